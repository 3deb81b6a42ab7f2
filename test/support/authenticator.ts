import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';

/**
 * A software WebAuthn authenticator for tests (W3C WebAuthn L3 §6, ES256 on P-256): it makes the
 * `none` attestation a browser returns from `navigator.credentials.create()` and the assertions
 * from `navigator.credentials.get()`, in their JSON forms. Everything the server checks is real:
 * the RP id hash, the flags, the signature counter, the COSE key in CBOR, the DER ECDSA signature
 * over authenticatorData ‖ SHA-256(clientDataJSON). Overrides produce the faulty answers.
 */

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_AT = 0x40;

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

/** The CBOR (RFC 8949) subset WebAuthn needs: integers, byte and text strings, maps. */
type Cbor = number | string | Uint8Array | Map<Cbor, Cbor>;

function cborHead(major: number, n: number): Buffer {
  if (n < 24) {
    return Buffer.from([(major << 5) | n]);
  }
  if (n < 0x100) {
    return Buffer.from([(major << 5) | 24, n]);
  }
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

export function cbor(v: Cbor): Buffer {
  if (typeof v === 'number') {
    return v >= 0 ? cborHead(0, v) : cborHead(1, -1 - v);
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([cborHead(3, s.length), s]);
  }
  if (v instanceof Map) {
    const parts = [cborHead(5, v.size)];
    for (const [k, x] of v) {
      parts.push(cbor(k), cbor(x));
    }
    return Buffer.concat(parts);
  }
  return Buffer.concat([cborHead(2, v.length), v]);
}

export interface CeremonyOverrides {
  /** The page origin the browser would report (default: the authenticator's origin). */
  readonly origin?: string;
  /** The RP id whose hash goes into authenticatorData (default: the authenticator's). */
  readonly rpId?: string;
  /** Use this signature counter instead of the next one (a replay or a clone). */
  readonly signCount?: number;
  /** Sign this challenge instead of the one in the options. */
  readonly challenge?: string;
  /** Leave out user verification (UV). */
  readonly noUserVerification?: boolean;
  /** Flip a bit of the signature. */
  readonly tamperSignature?: boolean;
}

export interface RegistrationJSON {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports: string[] };
  clientExtensionResults: Record<string, never>;
}

export interface AssertionJSON {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string };
  clientExtensionResults: Record<string, never>;
}

/** One credential on one software authenticator. */
export class SoftAuthenticator {
  readonly credentialId = randomBytes(32);
  readonly rpId: string;
  readonly origin: string;
  /** The counter the authenticator last reported. */
  signCount = 0;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;

  constructor(options: { rpId?: string; origin?: string } = {}) {
    this.rpId = options.rpId ?? 'localhost';
    this.origin = options.origin ?? 'https://localhost:8443';
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  /** `navigator.credentials.create()` for the given options (uses `challenge`). */
  register(options: { challenge: string }, o: CeremonyOverrides = {}): RegistrationJSON {
    const clientDataJSON = this.#clientData('webauthn.create', o.challenge ?? options.challenge, o);
    const jwk = this.#publicKey.export({ format: 'jwk' });
    // COSE_Key (RFC 9052 §7, RFC 9053 §7.1.1): kty EC2, alg ES256, crv P-256, x, y.
    const coseKey = cbor(
      new Map<Cbor, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x ?? '', 'base64url')],
        [-3, Buffer.from(jwk.y ?? '', 'base64url')],
      ]),
    );
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const authData = Buffer.concat([
      this.#authDataHead(FLAG_AT, o),
      Buffer.alloc(16), // AAGUID: zeros, as `none` attestation allows
      idLength,
      this.credentialId,
      coseKey,
    ]);
    const attestationObject = cbor(
      new Map<Cbor, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientDataJSON),
        attestationObject: b64url(attestationObject),
        transports: ['internal'],
      },
      clientExtensionResults: {},
    };
  }

  /** `navigator.credentials.get()` for the given options (uses `challenge`); advances the counter. */
  assert(options: { challenge: string }, o: CeremonyOverrides = {}): AssertionJSON {
    const clientDataJSON = this.#clientData('webauthn.get', o.challenge ?? options.challenge, o);
    const authData = this.#authDataHead(0, o);
    // DER-encoded ECDSA (node's default for EC keys), as WebAuthn §6.5.6 specifies for ES256.
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.#privateKey);
    if (o.tamperSignature) {
      signature[signature.length - 1] = (signature[signature.length - 1] ?? 0) ^ 0x01;
    }
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientDataJSON),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
      },
      clientExtensionResults: {},
    };
  }

  #clientData(type: string, challenge: string, o: CeremonyOverrides): Buffer {
    return Buffer.from(
      JSON.stringify({ type, challenge, origin: o.origin ?? this.origin, crossOrigin: false }),
      'utf8',
    );
  }

  /** rpIdHash ‖ flags ‖ signCount (WebAuthn §6.1). */
  #authDataHead(extraFlags: number, o: CeremonyOverrides): Buffer {
    if (o.signCount === undefined) {
      this.signCount += 1;
    }
    const count = Buffer.alloc(4);
    count.writeUInt32BE(o.signCount ?? this.signCount);
    const flags = FLAG_UP | (o.noUserVerification ? 0 : FLAG_UV) | extraFlags;
    return Buffer.concat([sha256(o.rpId ?? this.rpId), Buffer.from([flags]), count]);
  }
}
