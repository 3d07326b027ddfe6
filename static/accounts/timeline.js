// The case page's 12-month timeline, drawn with plotly.js served from the plotly package.
// Times come in the operator's zone (the page's); the axis, hover and buttons follow the page's language.
(function () {
  "use strict";
  var holder = document.getElementById("timeline");
  var dataNode = document.getElementById("timeline-data");
  if (!holder || !dataNode || typeof Plotly === "undefined") return;
  var data = JSON.parse(dataNode.textContent);
  var lanes = data.lanes;
  var chinese = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
  if (chinese && window.RiskOpsPlotlyZh) Plotly.register(window.RiskOpsPlotlyZh);
  var traces = data.series.map(function (s) {
    return {
      type: "scatter", mode: "markers", name: s.label,
      x: s.x, y: s.x.map(function () { return s.lane; }),
      text: s.text, hovertemplate: "%{x|%Y-%m-%d %H:%M}<br>%{text}<extra>" + s.label + "</extra>",
      marker: { symbol: s.symbol, size: s.size || 10, color: s.color, line: { width: 1, color: "#333" } }
    };
  });
  var shapes = (data.spans || []).map(function (span) {
    return { type: "rect", xref: "x", yref: "y", x0: span.x0, x1: span.x1, y0: span.lane - 0.35, y1: span.lane + 0.35,
             fillcolor: span.color, opacity: 0.25, line: { width: 0 } };
  });
  Plotly.newPlot(holder, traces, {
    margin: { l: 150, r: 20, t: 10, b: 40 }, height: 60 + 42 * lanes.length, showlegend: false, shapes: shapes,
    xaxis: { type: "date", range: [data.start, data.end], hoverformat: "%Y-%m-%d %H:%M" },
    yaxis: { tickvals: lanes.map(function (_, i) { return i; }), ticktext: lanes, range: [-0.7, lanes.length - 0.3], fixedrange: true }
  }, { displaylogo: false, responsive: true, locale: chinese ? "zh-CN" : "en",
       modeBarButtonsToRemove: ["lasso2d", "select2d"] });
})();
