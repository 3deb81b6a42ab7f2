import fs from 'node:fs';
import path from 'node:path';
import { generate } from 'selfsigned';

/**
 * The server's certificate: `CUSTOS_TLS_CERT` / `CUSTOS_TLS_KEY` when set, otherwise a
 * self-signed certificate for localhost created on first start in the data folder (key mode
 * 0600). HIPAA 164.312(e) transmission security: the server speaks only TLS 1.2+.
 */
export async function loadOrCreateCertificate(options: {
  dataDir: string;
  certFile?: string;
  keyFile?: string;
}): Promise<{ cert: string; key: string; created: boolean }> {
  if (options.certFile && options.keyFile) {
    return {
      cert: fs.readFileSync(options.certFile, 'utf8'),
      key: fs.readFileSync(options.keyFile, 'utf8'),
      created: false,
    };
  }
  const dir = path.join(options.dataDir, 'tls');
  const certPath = path.join(dir, 'localhost.crt');
  const keyPath = path.join(dir, 'localhost.key');
  if (fs.existsSync(certPath) && fs.existsSync(keyPath)) {
    return { cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8'), created: false };
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  fs.writeFileSync(keyPath, pems.private, { mode: 0o600 });
  fs.writeFileSync(certPath, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, created: true };
}

/** Modern suites only (Mozilla "intermediate" for TLS 1.2; TLS 1.3 suites are always on). */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
