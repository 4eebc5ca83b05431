// The console's push channel: server-sent events read from fetch() so that the admin key
// travels in the Authorization header (EventSource cannot set headers; no key in a URL).

/**
 * Opens /v1/console/events and calls handlers[event](data) for each message; reconnects
 * with a growing delay (at most 5 s) until stop() is called or the key is refused.
 */
export function openFeed(key, handlers, onState) {
  const ctrl = new AbortController();
  let stopped = false;
  (async () => {
    let delay = 250;
    while (!stopped) {
      try {
        const res = await fetch('/v1/console/events', {
          headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
          cache: 'no-store',
          signal: ctrl.signal,
        });
        if (res.status === 401 || res.status === 403) {
          onState('refused');
          return;
        }
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        onState('live');
        delay = 250;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
            dispatch(buf.slice(0, end), handlers);
            buf = buf.slice(end + 2);
          }
        }
      } catch (err) {
        if (stopped) return;
        console.warn('console feed', err);
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return {
    stop() {
      stopped = true;
      ctrl.abort();
    },
  };
}

function dispatch(block, handlers) {
  let event = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (!data) return;
  const fn = handlers[event];
  if (!fn) return;
  try {
    fn(JSON.parse(data));
  } catch (err) {
    console.error('console feed handler', event, err);
  }
}
