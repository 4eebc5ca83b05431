import type { FastifyInstance, RouteOptions } from 'fastify';
import type { RouteConfig } from './auth.js';

/** One route as collected for the document. */
interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  config: RouteConfig;
}

const STATUS_TEXT: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '204': 'No content',
  '400': 'Invalid input (LAPSE_INVALID_INPUT)',
  '401': 'Missing or unknown key, or a bad token (LAPSE_UNAUTHORIZED)',
  '403': 'An app key on an admin route (LAPSE_FORBIDDEN)',
  '404': 'Not found (LAPSE_NOT_FOUND)',
  '409': 'Version conflict (LAPSE_VERSION_CONFLICT)',
  '413': 'Payload too large (LAPSE_PAYLOAD_TOO_LARGE)',
  '423': 'Leased by someone else (LAPSE_LOCKED / LAPSE_LOCK_TIMEOUT)',
  '429': 'Too many failed token checks from this address',
  '503': 'Backend unavailable (LAPSE_BACKEND_UNAVAILABLE)',
};

/**
 * Collects every route's schema as it is registered, and renders an OpenAPI 3.1 document
 * from them: the schemas Fastify validates with are the ones the document shows.
 */
export class OpenApiCollector {
  private readonly routes: Collected[] = [];
  private doc: object | undefined;

  /** Hooks route registration; call before any route is added. */
  attach(app: FastifyInstance): void {
    app.addHook('onRoute', (route: RouteOptions) => {
      const config = (route.config ?? {}) as RouteConfig;
      if (config.hide === true) return;
      const schema = (route.schema ?? {}) as Record<string, unknown>;
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (method === 'HEAD' || method === 'OPTIONS') continue;
        this.routes.push({ method: method.toLowerCase(), url: route.url, schema, config });
      }
    });
  }

  /** The document (built once, on first use). */
  document(info: { version: string }): object {
    this.doc ??= this.build(info.version);
    return this.doc;
  }

  private build(version: string): object {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of this.routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const role = r.config.role ?? 'admin';
      const op: Record<string, unknown> = {
        summary: r.config.summary,
        tags: r.config.tags,
        'x-lapse-role': role,
        security: role === 'public' ? [] : [{ bearer: [] }],
        parameters: [...params(r.schema.params, 'path'), ...params(r.schema.querystring, 'query')],
        responses: responses(r.schema.response as Record<string, unknown> | undefined, r.config.produces),
      };
      const body = r.schema.body as { required?: string[] } | undefined;
      if (body) op.requestBody = { required: (body.required ?? []).length > 0, content: { 'application/json': { schema: body } } };
      paths[path] ??= {};
      paths[path][r.method] = op;
    }
    return {
      openapi: '3.1.0',
      info: {
        title: 'Lapse',
        version,
        description: 'Session lifecycle service. Send `Authorization: Bearer <key>`; admin routes need the admin key. Tokens travel only in bodies.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      paths,
    };
  }
}

function params(schema: unknown, where: 'path' | 'query'): object[] {
  const s = schema as { properties?: Record<string, { description?: string }>; required?: string[] } | undefined;
  if (!s?.properties) return [];
  return Object.entries(s.properties).map(([name, prop]) => ({
    name,
    in: where,
    required: where === 'path' || (s.required ?? []).includes(name),
    ...(prop.description ? { description: prop.description } : {}),
    schema: prop,
  }));
}

function responses(map: Record<string, unknown> | undefined, produces?: string): Record<string, object> {
  const out: Record<string, object> = {};
  for (const [status, schema] of Object.entries(map ?? { 200: {} })) {
    const s = schema as { type?: string; description?: string };
    const media = produces !== undefined && status.startsWith('2') ? produces : 'application/json';
    out[status] = {
      description: (media === 'application/json' ? undefined : s.description) ?? STATUS_TEXT[status] ?? 'Response',
      ...(s.type === 'null' ? {} : { content: { [media]: { schema } } }),
    };
  }
  return out;
}
