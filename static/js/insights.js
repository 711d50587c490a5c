// Insights dashboard: draws each chart from the JSON the server put in #insights-charts (json_script), with the
// vendored Chart.js (no eval, no injected styles). Clicking a point (bar segment, line point) opens the sessions or
// spans behind it, whose URL is built from the chart's, the period's and the series' parameters.
(() => {
  "use strict";
  const source = document.getElementById("insights-charts");
  if (!source || typeof window.Chart === "undefined") return;
  const specs = JSON.parse(source.textContent);
  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  // The same merge as Chart.link() on the server: chart, x position, series, point.
  const link = (spec, seriesIndex, index) => {
    const series = spec.series[seriesIndex];
    const params = new URLSearchParams({
      ...spec.link_common,
      ...(spec.link_x.length ? spec.link_x[index] : {}),
      ...series.link_params,
      ...(series.point_params ? series.point_params[index] : {}),
    });
    return `${spec.link_base}?${params}`;
  };

  // A rate's point from fewer trials than the chart's minimum sample: drawn hollow (lines) or faint (bars).
  const small = (spec, series, index) =>
    Boolean(series.n) && series.data[index] !== null && series.n[index] < spec.min_sample;

  const datasetsOf = (spec) => {
    const out = [];
    spec.series.forEach((s, seriesIndex) => {
      if (spec.kind === "line" && s.low && s.high) {
        // The 95% interval as a band: an invisible upper edge, and the lower edge filled up to it.
        const edge = { borderWidth: 0, pointRadius: 0, pointHitRadius: 0, spanGaps: false, band: true };
        out.push({ ...edge, label: `${s.label} (95% interval)`, data: s.high, fill: false });
        out.push({ ...edge, label: `${s.label} (95% interval, low)`, data: s.low, fill: "-1",
          backgroundColor: `${s.colour}26` });
      }
      const hollow = s.data.map((_, i) => small(spec, s, i));
      out.push({
        seriesIndex,
        label: s.label,
        data: s.data,
        backgroundColor: spec.kind === "line"
          ? hollow.map((h) => (h ? "#ffffff" : s.colour))
          : hollow.map((h) => (h ? `${s.colour}59` : s.colour)),
        borderColor: s.colour,
        borderWidth: spec.kind === "line" ? 2 : 0,
        pointRadius: spec.kind === "line" ? hollow.map((h) => (h ? 4 : 3)) : undefined,
        pointHitRadius: 8,
        spanGaps: false,
      });
    });
    return out;
  };

  const describe = (spec, series, index) => {
    const value = series.data[index];
    if (value === null) return `${series.label}: no data`;
    let text = `${series.label}: ${number.format(value)} ${spec.unit}`;
    if (series.n) {
      const low = series.low[index], high = series.high[index];
      if (low !== null && high !== null) text += ` (95% CI ${number.format(low)}–${number.format(high)}`;
      text += `, n = ${series.n[index]})`;
      if (small(spec, series, index)) text += ` · small sample (n < ${spec.min_sample})`;
    }
    return text;
  };

  for (const spec of specs) {
    const canvas = document.querySelector(`canvas[data-chart="${CSS.escape(spec.id)}"]`);
    if (!canvas) continue;
    const valueAxis = spec.horizontal ? "x" : "y";
    const categoryAxis = spec.horizontal ? "y" : "x";
    const datasets = datasetsOf(spec);
    const chart = new window.Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        // Points land where they end up at once: readable immediately, and clickable at stable positions.
        animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        interaction: { mode: "nearest", intersect: true },
        scales: {
          [categoryAxis]: { stacked: spec.stacked, ticks: { autoSkip: true, maxRotation: 0 } },
          [valueAxis]: {
            stacked: spec.stacked,
            beginAtZero: true,
            title: { display: true, text: spec.unit },
          },
        },
        plugins: {
          legend: {
            position: "bottom",
            labels: { boxWidth: 12, filter: (item) => !datasets[item.datasetIndex].band },
          },
          tooltip: {
            filter: (item) => !datasets[item.datasetIndex].band,
            callbacks: {
              label: (ctx) => describe(spec, spec.series[datasets[ctx.datasetIndex].seriesIndex], ctx.dataIndex),
              footer: () => "Click to open what is behind this point",
            },
          },
        },
        onClick: (event, elements, c) => {
          const hit = elements.find((e) => !datasets[e.datasetIndex].band);
          if (!hit) return;
          window.location.assign(link(spec, datasets[hit.datasetIndex].seriesIndex, hit.index));
        },
        onHover: (event, elements) => {
          // CSSOM, not a style attribute: allowed by the CSP.
          event.native.target.style.cursor = elements.some((e) => !datasets[e.datasetIndex].band) ? "pointer" : "default";
        },
      },
    });
    canvas.dataset.ready = "1";
    void chart;
  }
})();
