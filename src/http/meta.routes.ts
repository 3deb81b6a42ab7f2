import type { FastifyInstance } from 'fastify';

/** `/healthz` (no details), the OpenAPI document and a readable page of it (no scripts). */
export function registerMetaRoutes(app: FastifyInstance): void {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/api/docs', { schema: { hide: true } }, async (_req, reply) => {
    const doc = app.swagger() as {
      paths?: Record<string, Record<string, { summary?: string; tags?: string[]; requestBody?: unknown }>>;
    };
    const rows = Object.entries(doc.paths ?? {}).flatMap(([path, ops]) =>
      Object.entries(ops).map(
        ([method, op]) =>
          `<tr><td><code>${method.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${esc(op.summary ?? '')}</td><td>${esc((op.tags ?? []).join(', '))}</td></tr>`,
      ),
    );
    reply.type('text/html; charset=utf-8');
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Custos API</title></head><body>
<h1>Custos clinic API</h1><p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1). Every unsafe request needs an <code>Origin</code> header of this server; authenticated routes need the session cookie.</p>
<table><thead><tr><th>method</th><th>path</th><th>what</th><th>area</th></tr></thead><tbody>${rows.join('')}</tbody></table></body></html>`;
  });
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
