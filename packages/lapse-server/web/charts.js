// The overview charts, drawn with uPlot (served by the service from its own dependencies).

const COLORS = ['#1f77b4', '#d62728', '#ff7f0e', '#9467bd', '#2ca02c'];

/** Chart name -> the series it draws from each point. */
export const CHARTS = {
  sessions: [['Sessions', (p) => p.sessions]],
  connections: [['Connections', (p) => p.connections]],
  lifecycle: [
    ['Created', (p) => p.created],
    ['Expired', (p) => p.expired],
    ['Evicted', (p) => p.evicted],
    ['Revoked', (p) => p.revoked],
  ],
  validate: [['Validations/s', (p) => p.validations]],
  latency: [
    ['p50 ms', (p) => p.p50],
    ['p99 ms', (p) => p.p99],
  ],
  errors: [['Errors', (p) => p.backendErrors]],
};

/** Keeps each chart's columns (time in seconds first) as a bounded window of points. */
export class Charts {
  constructor(capacity) {
    this.capacity = capacity || 360;
    this.points = [];
    this.plots = {};
  }

  /** Replaces every point (the first message of a stream). */
  reset(points, capacity) {
    if (capacity) this.capacity = capacity;
    this.points = points.slice(-this.capacity);
    this.redraw();
  }

  /** Adds one point, dropping the oldest beyond the window. */
  add(point) {
    this.points.push(point);
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
    this.redraw();
  }

  /** The columns a chart draws: [times, ...series]. */
  data(name) {
    const t = this.points.map((p) => p.t / 1000);
    return [t, ...CHARTS[name].map(([, pick]) => this.points.map(pick))];
  }

  /** Makes the plots once their containers are visible; resizes them to their containers. */
  mount() {
    if (typeof window.uPlot !== 'function') return;
    for (const name of Object.keys(CHARTS)) {
      const el = document.getElementById(`chart-${name}`);
      if (!el) continue;
      const width = Math.max(200, el.clientWidth);
      if (this.plots[name]) {
        this.plots[name].setSize({ width, height: 170 });
        continue;
      }
      if (el.clientWidth === 0) continue;
      const dark = matchMedia('(prefers-color-scheme: dark)').matches;
      const axis = { stroke: dark ? '#9aa5b1' : '#5b6673', grid: { stroke: dark ? '#2f3842' : '#e3e6ea' }, ticks: { stroke: dark ? '#2f3842' : '#e3e6ea' } };
      const opts = {
        width,
        height: 170,
        series: [{}, ...CHARTS[name].map(([label], i) => ({ label, stroke: COLORS[i], width: 2, spanGaps: true, points: { size: 4 } }))],
        axes: [axis, { ...axis, size: 48 }],
        scales: { x: { time: true } },
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      };
      this.plots[name] = new window.uPlot(opts, this.data(name), el);
    }
  }

  redraw() {
    for (const [name, plot] of Object.entries(this.plots)) plot.setData(this.data(name));
  }
}
