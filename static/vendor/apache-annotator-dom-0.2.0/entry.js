export { highlightText, describeTextPosition, createTextPositionSelectorMatcher } from '@apache-annotator/dom';
