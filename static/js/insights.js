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

  for (const spec of specs) {
    const canvas = document.querySelector(`canvas[data-chart="${CSS.escape(spec.id)}"]`);
    if (!canvas) continue;
    const valueAxis = spec.horizontal ? "x" : "y";
    const categoryAxis = spec.horizontal ? "y" : "x";
    const chart = new window.Chart(canvas, {
      type: spec.kind,
      data: {
        labels: spec.labels,
        datasets: spec.series.map((s) => ({
          label: s.label,
          data: s.data,
          backgroundColor: s.colour,
          borderColor: s.colour,
          borderWidth: spec.kind === "line" ? 2 : 0,
          pointRadius: spec.kind === "line" ? 3 : undefined,
          pointHitRadius: 8,
          spanGaps: false,
        })),
      },
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
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${ctx.raw === null ? "no data" : number.format(ctx.raw)} ${spec.unit}`,
              footer: () => "Click to open what is behind this point",
            },
          },
        },
        onClick: (event, elements, c) => {
          const hit = elements[0];
          if (!hit) return;
          window.location.assign(link(spec, hit.datasetIndex, hit.index));
        },
        onHover: (event, elements) => {
          // CSSOM, not a style attribute: allowed by the CSP.
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
    canvas.dataset.ready = "1";
    void chart;
  }
})();
