import type { Registry } from 'prom-client';

/**
 * The two metrics touched on every request, kept as plain numbers and turned into
 * Prometheus text only when scraped. prom-client's Histogram.observe and Counter.inc cost
 * about 0.6 µs each here; these cost a few array writes. Registered on the same prom-client
 * Registry (it renders any object with `name` and `get()`), so /metrics is one document.
 */

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface MetricJson {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
  values: MetricValue[];
  aggregator: 'sum';
}

/** The slice of prom-client's Metric interface a Registry needs to render a metric. */
interface Renderable {
  name: string;
  get(): Promise<MetricJson>;
  reset(): void;
}

function register(registry: Registry, metric: Renderable): void {
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/** One labelled series of a HotHistogram. */
export class HistogramSeries {
  /** counts[i]: observations in bucket i alone (made cumulative when rendered); the last is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    (this.counts[i] as number)++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram with one label and fixed series, for the hot path. */
export class HotHistogram implements Renderable {
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    registry: Registry,
    readonly name: string,
    private readonly help: string,
    private readonly label: string,
    private readonly buckets: readonly number[],
  ) {
    register(registry, this);
  }

  /** The series for one label value (made on first use); keep it and call observe(). */
  labels(value: string): HistogramSeries {
    let s = this.series.get(value);
    if (!s) {
      s = new HistogramSeries(this.buckets);
      this.series.set(value, s);
    }
    return s;
  }

  async get(): Promise<MetricJson> {
    const values: MetricValue[] = [];
    for (const [labelValue, s] of this.series) {
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += s.counts[i] as number;
        const le = i < this.buckets.length ? (this.buckets[i] as number) : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, [this.label]: labelValue }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: labelValue }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: labelValue }, value: s.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

/** A counter over a few label sets known by a key the caller builds cheaply. */
export class HotCounter implements Renderable {
  private readonly series = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(
    registry: Registry,
    readonly name: string,
    private readonly help: string,
  ) {
    register(registry, this);
  }

  /** Adds one to the series `key`; `labels` is called only the first time the key is seen. */
  inc(key: string, labels: () => Record<string, string>): void {
    const s = this.series.get(key);
    if (s) s.value++;
    else this.series.set(key, { labels: labels(), value: 1 });
  }

  async get(): Promise<MetricJson> {
    const values = [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' };
  }

  reset(): void {
    this.series.clear();
  }
}
