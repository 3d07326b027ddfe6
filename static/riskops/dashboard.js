// The dashboard's charts, drawn with plotly.js served from the plotly package. Each point carries the link to the
// cases or appeals it counts (the table under each chart has the same links): a click on a bar or point opens it.
(function () {
  "use strict";
  var dataNode = document.getElementById("dashboard-data");
  if (!dataNode || typeof Plotly === "undefined") return;
  var data = JSON.parse(dataNode.textContent);
  var chinese = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
  if (chinese && window.RiskOpsPlotlyZh) Plotly.register(window.RiskOpsPlotlyZh);
  var config = { displaylogo: false, responsive: true, locale: chinese ? "zh-CN" : "en",
                 modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var palette = ["#1f5fbf", "#d9822b", "#2e8b57", "#b03a48", "#7a5195", "#8c8c8c", "#17becf", "#bcbd22"];

  function follow(holder) {
    holder.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (point && point.customdata) window.location.href = point.customdata;
    });
  }

  document.querySelectorAll("section.chart[data-kind]").forEach(function (section) {
    var name = section.id.replace("chart-", "");
    var chart = data[name];
    var holder = document.getElementById("plot-" + name);
    if (!chart || !holder) return;
    if (!chart.series.length || !chart.series.some(function (s) { return s.y.some(function (n) { return n; }); })) {
      holder.classList.add("empty");
      holder.textContent = holder.getAttribute("data-empty");
      return;
    }
    var kind = section.getAttribute("data-kind");
    var dates = name !== "decision_time" && name !== "tiers";
    var traces = chart.series.map(function (s, i) {
      var links = s.links || chart.x.map(function (day) { return s.pattern.split("{day}").join(day); });
      var trace = { name: s.label, x: chart.labels, y: s.y, customdata: links,
                    marker: { color: palette[i % palette.length] },
                    hovertemplate: (dates ? "%{x|%Y-%m-%d}" : "%{x}") + "<br>%{y}<extra>" + s.label + "</extra>" };
      if (kind === "line") { trace.type = "scatter"; trace.mode = "lines+markers"; } else { trace.type = "bar"; }
      return trace;
    });
    Plotly.newPlot(holder, traces, {
      barmode: kind === "stack" ? "stack" : "group", height: 300, margin: { l: 50, r: 10, t: 10, b: 40 },
      showlegend: chart.series.length > 1, legend: { orientation: "h", y: -0.2 },
      xaxis: dates ? { type: "date", tickformat: "%m-%d" } : { type: "category" },
      yaxis: { rangemode: "tozero", fixedrange: true }
    }, config);
    follow(holder);
  });

  var rates = data.overturn || [];
  var holder = document.getElementById("plot-overturn");
  if (holder && rates.length) {
    var labels = rates.map(function (r) { return r.rule + " v" + r.version; });
    Plotly.newPlot(holder, [{
      type: "bar", x: labels, y: rates.map(function (r) { return r.rate || 0; }),
      customdata: rates.map(function (r) { return r.k_link; }),
      text: rates.map(function (r) { return r.k + " / " + r.n; }),
      error_y: { type: "data", symmetric: false,
                 array: rates.map(function (r) { return r.high - (r.rate || 0); }),
                 arrayminus: rates.map(function (r) { return (r.rate || 0) - r.low; }) },
      marker: { color: "#b03a48" }, hovertemplate: "%{x}<br>%{y:.1%} (%{text})<extra></extra>"
    }], { height: 300, margin: { l: 50, r: 10, t: 10, b: 80 }, yaxis: { tickformat: ".0%", range: [0, 1], fixedrange: true } }, config);
    follow(holder);
  }
})();
