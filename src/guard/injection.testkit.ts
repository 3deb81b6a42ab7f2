import type { RequestParts } from './injection.ts';

/** Shared request builders for the injection tests. */

export const BROWSER_HEADERS: Readonly<Record<string, string>> = {
  'user-agent':
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  referer: 'https://clinic.example/patients?q=O%27Brien&page=2',
  origin: 'https://clinic.example',
  'accept-language': 'nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7',
  'content-type': 'application/json; charset=utf-8',
  cookie: 'custos_session=eyJhbGciOi.J9..x-_y; theme=dark',
  authorization: "Bearer ' OR '1'='1", // never read: credentials are opaque
};

export function request(parts: Partial<RequestParts>): RequestParts {
  return {
    method: 'GET',
    path: '/api/v1/patients',
    query: {},
    headers: BROWSER_HEADERS,
    body: undefined,
    ...parts,
  };
}

/** The same text in every place a clinician's input can travel. */
export function everywhere(text: string): RequestParts[] {
  return [
    request({ query: { q: text } }),
    request({ method: 'POST', body: { note: { title: 'Progress note', text }, items: [text] } }),
    request({ path: `/api/v1/patients/search/${encodeURIComponent(text)}` }),
    request({
      headers: { ...BROWSER_HEADERS, referer: `https://clinic.example/search?q=${encodeURIComponent(text)}` },
    }),
  ];
}
