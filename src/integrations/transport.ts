import dns from 'node:dns';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { hostOf, isNonPublicAddress } from './config.ts';

/**
 * One HTTPS POST to a receiver. TLS is always verified: the trusted roots are Node's bundled
 * ones plus, when configured, an extra CA (a private PKI, or the tests' self-signed receiver) —
 * never `rejectUnauthorized: false`. Redirects are not followed (a 3xx is a failed attempt), the
 * whole attempt has a deadline, and the answer's body is read at most 64 KiB and thrown away.
 * Unless private receivers are allowed, a host that resolves to a loopback, private or link-local
 * address is refused at connection time (DNS rebinding included).
 */

export interface PostOptions {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** Extra trusted CA certificates (PEM), added to Node's roots. */
  readonly ca?: string | readonly string[] | undefined;
  readonly allowPrivateAddresses: boolean;
}

/** `status` for an HTTP answer, `error` (a short code, no detail from the receiver) otherwise. */
export type PostResult =
  | { readonly ok: boolean; readonly status: number }
  | { readonly ok: false; readonly error: 'timeout' | 'tls-error' | 'connection-error' | 'address-refused' };

const MAX_ANSWER = 64 * 1024;

class AddressRefused extends Error {
  readonly code = 'CUSTOS_ADDRESS_REFUSED';
}

/** dns.lookup that refuses non-public answers (both the single and the `all` form Node may use). */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) {
      callback(err, '', 0);
      return;
    }
    const list = addresses as dns.LookupAddress[];
    if (list.length === 0 || list.some((a) => isNonPublicAddress(a.address))) {
      callback(new AddressRefused('the receiver resolves to a non-public address'), '', 0);
      return;
    }
    if ((options as dns.LookupOptions).all) {
      (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
    } else {
      const first = list[0] as dns.LookupAddress;
      callback(null, first.address, first.family);
    }
  });
};

export function postWebhook(o: PostOptions): Promise<PostResult> {
  const url = new URL(o.url);
  const host = hostOf(url);
  if (!o.allowPrivateAddresses && isIP(host) !== 0 && isNonPublicAddress(host)) {
    return Promise.resolve({ ok: false, error: 'address-refused' });
  }
  const extra = o.ca === undefined ? [] : typeof o.ca === 'string' ? [o.ca] : [...o.ca];
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: PostResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(r);
      }
    };
    const req = https.request(
      url,
      {
        method: 'POST',
        headers: {
          ...o.headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(o.body)),
          'user-agent': 'Custos-Webhooks/1',
        },
        ...(extra.length > 0 ? { ca: [...rootCertificates, ...extra] } : {}),
        minVersion: 'TLSv1.2',
        agent: false,
        ...(o.allowPrivateAddresses ? {} : { lookup: publicOnlyLookup }),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (c: Buffer) => {
          read += c.length;
          if (read > MAX_ANSWER) {
            res.destroy();
          }
        });
        const finish = () => done({ ok: status >= 200 && status < 300, status });
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      },
    );
    const timer = setTimeout(() => {
      done({ ok: false, error: 'timeout' });
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      done({ ok: false, error: classify(e) });
    });
    req.end(o.body);
  });
}

function classify(e: NodeJS.ErrnoException): 'tls-error' | 'connection-error' | 'address-refused' {
  if (e instanceof AddressRefused || e.code === 'CUSTOS_ADDRESS_REFUSED') {
    return 'address-refused';
  }
  const code = e.code ?? '';
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/i.test(code)) {
    return 'tls-error';
  }
  return 'connection-error';
}
