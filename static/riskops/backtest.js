// A backtest's chart: the accounts each version would freeze per day, and those only one of them freezes; drawn
// with plotly.js served from the plotly package, again each time the report (polled while its job runs) is swapped.
(function () {
  "use strict";
  var palette = ["#1f5fbf", "#d9822b", "#2e8b57", "#b03a48"];

  function draw() {
    var dataNode = document.getElementById("backtest-data");
    var holder = document.getElementById("plot-backtest");
    if (!dataNode || !holder || typeof Plotly === "undefined") return;
    var data = JSON.parse(dataNode.textContent);
    var chinese = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
    if (chinese && window.RiskOpsPlotlyZh) Plotly.register(window.RiskOpsPlotlyZh);
    var traces = data.series.map(function (s, i) {
      return { type: "scatter", mode: "lines", name: s.label, x: data.labels, y: s.y,
               line: { color: palette[i % palette.length], dash: i < 2 ? "solid" : "dot" },
               hovertemplate: "%{x|%Y-%m-%d}<br>%{y}<extra>" + s.label + "</extra>" };
    });
    Plotly.newPlot(holder, traces, {
      height: 300, margin: { l: 50, r: 10, t: 10, b: 40 }, legend: { orientation: "h", y: -0.2 },
      xaxis: { type: "date", tickformat: "%m-%d" }, yaxis: { rangemode: "tozero", fixedrange: true }
    }, { displaylogo: false, responsive: true, locale: chinese ? "zh-CN" : "en",
         modeBarButtonsToRemove: ["lasso2d", "select2d"] });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.body.addEventListener("htmx:afterSwap", draw);
})();
