import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../src/server/hot-metrics.js';

/** The sample lines of a Prometheus text document, without the HELP/TYPE comments. */
const samples = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('hot metrics', () => {
  it('a HotHistogram renders exactly what a prom-client Histogram renders for the same observations', async () => {
    const buckets = [0.001, 0.01, 0.1];
    const mine = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram(mine, 'h_seconds', 'help', 'result', buckets);
    const ref = new Histogram({ name: 'h_seconds', help: 'help', labelNames: ['result'], buckets, registers: [theirs] });
    // Values on, below, between and above the bounds, in two series.
    const values = [0, 0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.2, 3];
    for (const [i, v] of values.entries()) {
      const result = i % 3 === 0 ? 'invalid' : 'valid';
      hot.labels(result).observe(v);
      ref.labels(result).observe(v);
    }
    const sort = (t: string) => samples(t).sort();
    expect(sort(await mine.metrics())).toEqual(sort(await theirs.metrics()));
    expect(await mine.metrics()).toContain('h_seconds_bucket{le="+Inf",result="valid"} 6');
    hot.reset();
    expect(await mine.metrics()).toContain('h_seconds_count{result="valid"} 0');
  });

  it('a HotCounter counts per key, with labels escaped by the registry', async () => {
    const registry = new Registry();
    const c = new HotCounter(registry, 'reqs_total', 'help');
    let made = 0;
    const labels = () => {
      made++;
      return { route: '/a"b', status: '200' };
    };
    for (let i = 0; i < 5; i++) c.inc('k1', labels);
    c.inc('k2', () => ({ route: '/c', status: '404' }));
    expect(made).toBe(1);
    const text = await registry.metrics();
    expect(samples(text)).toEqual(['reqs_total{route="/a\\"b",status="200"} 5', 'reqs_total{route="/c",status="404"} 1']);
    expect(text).toContain('# TYPE reqs_total counter');
  });
});
