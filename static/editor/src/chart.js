// The usage chart of the Management page: calls per integration per month as stacked bars,
// with the monthly quota as a line. Chart.js, registering only the parts this chart uses.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, Legend, LineController, LineElement,
  LinearScale, PointElement, Tooltip);

// Distinguishable in light and dark mode (Okabe–Ito, colour-blind safe).
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"];

// usageChart(canvas, {months: [{month, calls: {key: n}}], quota, names: {key: name}, dark})
export function usageChart(canvas, { months, quota, names = {}, dark = false }) {
  const keys = [...new Set(months.flatMap((m) => Object.keys(m.calls)))].sort();
  const text = dark ? "#d8dde6" : "#222831";
  const grid = dark ? "rgba(255,255,255,0.12)" : "rgba(0,0,0,0.1)";
  const datasets = keys.map((key, i) => ({
    type: "bar",
    label: names[key] || key,
    data: months.map((m) => m.calls[key] || 0),
    backgroundColor: PALETTE[i % PALETTE.length],
    stack: "calls",
    order: 2,
  }));
  if (quota) {
    datasets.push({
      type: "line",
      label: `Quota (${quota.toLocaleString()} calls)`,
      data: months.map(() => quota),
      borderColor: dark ? "#ff8a80" : "#c62828",
      borderDash: [6, 4],
      borderWidth: 2,
      pointRadius: 0,
      order: 1,
    });
  }
  return new Chart(canvas, {
    data: { labels: months.map((m) => m.month), datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      color: text,
      scales: {
        x: { stacked: true, ticks: { color: text }, grid: { color: grid } },
        y: { stacked: true, beginAtZero: true, ticks: { color: text, precision: 0 }, grid: { color: grid },
          title: { display: true, text: "calls", color: text } },
      },
      plugins: { legend: { position: "bottom", labels: { color: text, boxWidth: 14 } } },
    },
  });
}
