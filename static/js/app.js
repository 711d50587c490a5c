// FeedbackHub's own small behaviours. Loaded on every page; no inline script anywhere (CSP).
