import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  randomUUID,
  sign,
} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CustosError } from '../errors.ts';
import { type Binding, keyIdOf, open, seal } from './envelope.ts';

/**
 * The keyring: the key-encryption key (KEK), the blind-index key, the pseudonym-link key and the
 * audit signing key. It lives in a file of mode 0600 (the local key-file provider), never in
 * the database; the database keeps only key check values, so a wrong key file is refused
 * before anything is written.
 */
export interface KeyFile {
  format: 'custos-keys/1';
  /** Key-encryption keys, newest last; the last one wraps new data keys. */
  kek: { id: string; key: string; created: string }[];
  index: { id: string; key: string };
  link: { id: string; key: string };
  audit: { id: string; privateKey: string };
}

export interface KeyCheck {
  readonly name: string;
  readonly value: string;
}

export class Keyring {
  readonly #keks: Map<string, Buffer>;
  readonly #activeKek: string;
  readonly #indexKey: Buffer;
  readonly #indexSubkeys = new Map<string, Buffer>();
  readonly linkKeyId: string;
  readonly #linkKey: Buffer;
  readonly #linkIndexKey: Buffer;
  readonly auditKeyId: string;
  readonly #auditPrivate: KeyObject;
  readonly auditPublicKey: KeyObject;

  constructor(file: KeyFile) {
    if (file.format !== 'custos-keys/1' || file.kek.length === 0) {
      throw new CustosError(
        'CUSTOS_ERR_CONFIG',
        'the key file is not a Custos key file (format custos-keys/1)',
      );
    }
    this.#keks = new Map(file.kek.map((k) => [k.id, b64key(k.key)]));
    this.#activeKek = file.kek[file.kek.length - 1]?.id ?? '';
    this.#indexKey = b64key(file.index.key);
    this.linkKeyId = file.link.id;
    this.#linkKey = b64key(file.link.key);
    this.#linkIndexKey = Buffer.from(
      hkdfSync('sha256', this.#linkKey, Buffer.alloc(0), 'custos link index', 32),
    );
    this.auditKeyId = file.audit.id;
    this.#auditPrivate = createPrivateKey({
      key: Buffer.from(file.audit.privateKey, 'base64'),
      format: 'der',
      type: 'pkcs8',
    });
    this.auditPublicKey = createPublicKey(this.#auditPrivate);
  }

  /** Creates a fresh keyring with random keys. */
  static generate(): KeyFile {
    const audit = generateKeyPairSync('ed25519');
    return {
      format: 'custos-keys/1',
      kek: [{ id: randomUUID(), key: randomBytes(32).toString('base64'), created: new Date().toISOString() }],
      index: { id: randomUUID(), key: randomBytes(32).toString('base64') },
      link: { id: randomUUID(), key: randomBytes(32).toString('base64') },
      audit: {
        id: randomUUID(),
        privateKey: audit.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
      },
    };
  }

  /** Id of the KEK that wraps new data keys. */
  get activeKekId(): string {
    return this.#activeKek;
  }

  /** Wraps a data key under the active KEK, bound to its data_keys row. */
  wrapDataKey(dataKeyId: string, dek: Buffer): { kekId: string; wrapped: Buffer } {
    const kek = this.#kek(this.#activeKek);
    return { kekId: this.#activeKek, wrapped: seal(kek, this.#activeKek, dataKeyBinding(dataKeyId), dek) };
  }

  unwrapDataKey(dataKeyId: string, wrapped: Buffer): Buffer {
    const at = dataKeyBinding(dataKeyId);
    return open(this.#kek(keyIdOf(wrapped, at)), at, wrapped);
  }

  /**
   * Seals a small secret (a TOTP seed) directly under the active key-encryption key, bound to
   * where it is stored. Re-wrapped with the data keys when the KEK rotates.
   */
  sealSecret(at: Binding, plaintext: Buffer): Buffer {
    return seal(this.#kek(this.#activeKek), this.#activeKek, at, plaintext);
  }

  openSecret(at: Binding, blob: Buffer): Buffer {
    return open(this.#kek(keyIdOf(blob, at)), at, blob);
  }

  /** A key for keyed hashes of recovery codes (HKDF from the index key; never stored). */
  recoveryCodeKey(): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#indexKey, Buffer.alloc(0), 'custos recovery codes', 32));
  }

  /** Encrypts the pseudonym link of one patient under the link key. */
  sealLink(at: Binding, plaintext: Buffer): Buffer {
    return seal(this.#linkKey, this.linkKeyId, at, plaintext);
  }

  openLink(at: Binding, blob: Buffer): Buffer {
    if (keyIdOf(blob, at) !== this.linkKeyId) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `link ciphertext names an unknown key (row ${at.row})`);
    }
    return open(this.#linkKey, at, blob);
  }

  /** Keyed lookup hash of a pseudonym, so the link can be found from a clinical row. */
  pseudonymIndex(pseudonym: string): Buffer {
    return createHmac('sha256', this.#linkIndexKey).update(pseudonym).digest().subarray(0, 16);
  }

  /**
   * Blind index: HMAC-SHA256 of a normalized value under a per-kind subkey of the index key,
   * truncated to 128 bits. Never equal to an unkeyed hash of the value.
   */
  blindIndex(kind: string, normalized: string): Buffer {
    let sub = this.#indexSubkeys.get(kind);
    if (!sub) {
      sub = Buffer.from(
        hkdfSync('sha256', this.#indexKey, Buffer.alloc(0), `custos blind index ${kind}`, 32),
      );
      this.#indexSubkeys.set(kind, sub);
    }
    return createHmac('sha256', sub).update(normalized, 'utf8').digest().subarray(0, 16);
  }

  /** Ed25519 signature with the audit signing key. */
  signAudit(message: Buffer): Buffer {
    return sign(null, message, this.#auditPrivate);
  }

  /** Key check values stored in the database: HMACs of a constant, revealing nothing of the keys. */
  checks(): KeyCheck[] {
    const kcv = (key: Buffer) =>
      createHmac('sha256', key).update('custos key check value').digest('hex').slice(0, 32);
    const spki = this.auditPublicKey.export({ format: 'der', type: 'spki' });
    return [
      ...[...this.#keks].map(([id, key]) => ({ name: `kcv.kek.${id}`, value: kcv(key) })),
      { name: 'kcv.index', value: kcv(this.#indexKey) },
      { name: 'kcv.link', value: kcv(this.#linkKey) },
      { name: 'kcv.audit', value: createHmac('sha256', 'custos').update(spki).digest('hex').slice(0, 32) },
    ];
  }

  #kek(id: string): Buffer {
    const k = this.#keks.get(id);
    if (!k) {
      throw new CustosError('CUSTOS_ERR_KEY_MISSING', `key-encryption key ${id} is not in the key file`);
    }
    return k;
  }
}

const dataKeyBinding = (id: string): Binding => ({
  table: 'data_keys',
  column: 'wrapped',
  row: id,
  version: 0,
});

function b64key(s: string): Buffer {
  const k = Buffer.from(s, 'base64');
  if (k.length !== 32) {
    throw new CustosError('CUSTOS_ERR_CONFIG', 'a key in the key file is not 32 bytes');
  }
  return k;
}

/** Reads the key file; `undefined` when it does not exist. */
export function readKeyFile(file: string): KeyFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw e;
  }
  try {
    return JSON.parse(text) as KeyFile;
  } catch {
    throw new CustosError('CUSTOS_ERR_CONFIG', `the key file ${file} is not valid JSON`);
  }
}

/** Writes a new key file with mode 0600, refusing to overwrite one that exists. */
export function writeKeyFile(file: string, keys: KeyFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
}
