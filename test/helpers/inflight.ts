import type { Backend } from '../../packages/lapse/src/core/backend.js';

/** Counts a backend's calls in flight; drain() resolves once none is left after a few turns. */
export function trackInflight(target: Backend): { backend: Backend; drain: () => Promise<void> } {
  let inflight = 0;
  let idle: Array<() => void> = [];
  const backend = new Proxy(target, {
    get(t, prop, receiver) {
      const v: unknown = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out: unknown = v.apply(t, args);
        if (out instanceof Promise) {
          inflight++;
          out.then(done, done);
        }
        return out;
      };
    },
  });
  function done(): void {
    if (--inflight > 0) return;
    const wake = idle;
    idle = [];
    for (const w of wake) w();
  }
  async function drain(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
      if (inflight === 0) return;
      await new Promise<void>((r) => idle.push(r));
    }
  }
  return { backend, drain };
}
