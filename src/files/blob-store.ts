import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { Binding } from '../crypto/envelope.ts';
import { notFound } from '../errors.ts';
import { type FileType, Sniffer } from './sniff.ts';
import {
  decryptStream,
  encryptStream,
  fileIntegrityError,
  keyIdOfBlob,
  STREAM_HEADER_BYTES,
} from './stream-cipher.ts';

/**
 * Encrypted file contents on disk, outside any web root (`CUSTOS_DATA_DIR/blobs`), reached only
 * through the gate, which holds the patient's data key and the document row the blob is bound to.
 *
 * Layout: `<root>/ab/cd/<id>` with a random 128-bit hex id (the first two byte pairs fan out
 * the folders, so no folder grows past a few thousand entries), and `<root>/tmp/` for uploads in
 * progress. Nothing on disk names a patient or a file: no original name, no type, no pseudonym;
 * the content is the stream-cipher format (stream-cipher.ts) bound to its row. Folders are
 * 0700, files 0600. What remains visible: the number of blobs, their sizes (to within 16 bytes
 * per 64 KiB) and their times.
 */
export interface WriteOptions {
  /** The patient's data key (32 bytes, unwrapped by the gate) and its key id (UUID). */
  readonly key: Buffer;
  readonly keyId: string;
  /** Where the blob belongs (table, column, row, version): it will not decrypt anywhere else. */
  readonly binding: Binding;
  /** Largest accepted size in bytes (default 25 MiB); the upload stops as soon as it is passed. */
  readonly limit?: number;
  /** Accepted types (default PDF, PNG, JPEG, plain text). */
  readonly allowed?: readonly FileType[];
  /** Called once the first KiB identifies the (candidate) type, before the rest is read; throw to refuse. */
  readonly onType?: (type: FileType) => void;
}

export interface StoredBlob {
  readonly blobId: string;
  /** Plaintext bytes. */
  readonly size: number;
  /** SHA-256 of the plaintext, hex; store it with the row and pass it back to `read`. */
  readonly sha256: string;
  readonly contentType: FileType;
}

export interface ReadOptions {
  readonly key: Buffer;
  readonly binding: Binding;
  /** Checked at the end; the last chunk is held back until they match. */
  readonly expect?: { readonly size: number; readonly sha256: string };
}

const BLOB_ID = /^[0-9a-f]{32}$/;
const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;

export class BlobStore {
  readonly root: string;
  readonly #tmp: string;

  private constructor(root: string) {
    this.root = root;
    this.#tmp = path.join(root, 'tmp');
  }

  /**
   * Opens (creating, mode 0700) the store at `root`, tightening the folder's mode if it exists,
   * and removes uploads abandoned more than a day ago (a crash mid-upload leaves ciphertext only).
   *
   * @example const store = await BlobStore.open(path.join(config.dataDir, 'blobs'));
   */
  static async open(root: string): Promise<BlobStore> {
    const store = new BlobStore(path.resolve(root));
    await mkdir(store.root, { recursive: true, mode: 0o700 });
    await chmod(store.root, 0o700);
    await mkdir(store.#tmp, { recursive: true, mode: 0o700 });
    await chmod(store.#tmp, 0o700);
    const now = Date.now();
    for (const entry of await readdir(store.#tmp)) {
      const file = path.join(store.#tmp, entry);
      const info = await stat(file).catch(() => undefined); // removed meanwhile by another process
      if (info && now - info.mtimeMs > STALE_UPLOAD_MS) {
        await rm(file, { force: true });
      }
    }
    return store;
  }

  /**
   * Streams `source` through the sniffer (type from content, size limit), a SHA-256 of the
   * plaintext and the stream cipher into a 0600 temp file, fsyncs it and renames it into place.
   * A refused file rejects with a FileRejectedError (`CUSTOS_ERR_VALIDATION`, field `file`, with
   * a `reason`) as soon as it is refused; `source` is destroyed and nothing stays on disk.
   *
   * @example
   * const { blobId, size, sha256, contentType } = await store.write(part, { key, keyId, binding });
   */
  async write(source: Readable, options: WriteOptions): Promise<StoredBlob> {
    const sniffer = new Sniffer({ limit: options.limit, allowed: options.allowed });
    const hash = createHash('sha256');
    let contentType: FileType | undefined;
    let announced = false;
    const announce = (type: FileType | undefined): void => {
      if (type && !announced) {
        announced = true;
        options.onType?.(type);
      }
    };
    const inspect = new Transform({
      transform(chunk: Buffer, _encoding, done: TransformCallback) {
        try {
          sniffer.push(chunk);
          announce(sniffer.candidate);
          hash.update(chunk);
          done(null, chunk);
        } catch (e) {
          done(e as Error);
        }
      },
      flush(done: TransformCallback) {
        try {
          contentType = sniffer.end();
          announce(contentType);
          done();
        } catch (e) {
          done(e as Error);
        }
      },
    });

    const blobId = randomBytes(16).toString('hex');
    const temp = path.join(this.#tmp, `${randomBytes(16).toString('hex')}.part`);
    // 'wx': never follow or reuse an existing path; flush: fsync before close, so the rename
    // below never publishes a blob whose bytes are not on disk yet.
    const sink = createWriteStream(temp, { flags: 'wx', mode: 0o600, flush: true });
    try {
      await pipelineAsync(source, inspect, encryptStream(options.key, options.keyId, options.binding), sink);
      const final = this.#path(blobId);
      await mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
      await rename(temp, final);
      await syncFolder(path.dirname(final));
    } catch (e) {
      // A source that fails at once can make the pipeline reject while the temp file is still
      // being opened; the open completes after that (and would leave an empty file behind a
      // remove done now), so wait until the sink is closed.
      if (!sink.closed) {
        await new Promise<void>((resolve) => sink.once('close', () => resolve()));
      }
      await rm(temp, { force: true });
      throw e;
    }
    if (!contentType) {
      throw new Error('sniffer finished without a verdict'); // unreachable: flush sets it or fails
    }
    return { blobId, size: sniffer.size, sha256: hash.digest('hex'), contentType };
  }

  /**
   * The plaintext of a blob as a stream. Resolves once the blob is found and its header is
   * valid (so a route can still answer 404); a missing or malformed id is "not found". The
   * stream errors with `CUSTOS_ERR_INTEGRITY` on any tampering, wrong key or wrong binding,
   * having released only segments whose tags verified: a route must then abort the response.
   *
   * @example await pipeline(await store.read(blobId, { key, binding, expect: { size, sha256 } }), reply.raw);
   */
  async read(blobId: string, options: ReadOptions): Promise<Readable> {
    const handle = await this.#openBlob(blobId);
    try {
      await readHeader(handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
    const source = handle.createReadStream({ start: 0, highWaterMark: 64 * 1024 });
    const decrypt = decryptStream(options.key, options.binding);
    const last = options.expect ? verifyPlaintext(options.expect.size, options.expect.sha256) : decrypt;
    // Errors reach the consumer through the last stage, which pipeline destroys with them; a
    // consumer that stops early destroys the last stage, and pipeline closes the file. The
    // callback has nothing to add: the consumer sees the same error on `last`.
    pipeline(last === decrypt ? [source, decrypt] : [source, decrypt, last], () => undefined);
    return last;
  }

  /** The key id a blob's header names, so the gate can unwrap the right data key first. */
  async keyIdOf(blobId: string): Promise<string> {
    const handle = await this.#openBlob(blobId);
    try {
      return keyIdOfBlob(await readHeader(handle));
    } finally {
      await handle.close();
    }
  }

  /** Deletes a blob; false when there was none. Empty fan-out folders stay (a concurrent write may be renaming into them). */
  async remove(blobId: string): Promise<boolean> {
    try {
      await unlink(this.#path(blobId));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        return false;
      }
      throw e;
    }
  }

  /** The blob's path; only 32 lowercase hex digits are ids, so no id can leave the root. */
  #path(blobId: string): string {
    if (!BLOB_ID.test(blobId)) {
      throw notFound('file');
    }
    return path.join(this.root, blobId.slice(0, 2), blobId.slice(2, 4), blobId);
  }

  async #openBlob(blobId: string): Promise<FileHandle> {
    try {
      return await open(this.#path(blobId), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notFound('file');
      }
      throw e;
    }
  }
}

async function readHeader(handle: FileHandle): Promise<Buffer> {
  const header = Buffer.alloc(STREAM_HEADER_BYTES);
  const { bytesRead } = await handle.read(header, 0, STREAM_HEADER_BYTES, 0);
  keyIdOfBlob(header.subarray(0, bytesRead)); // throws CUSTOS_ERR_INTEGRITY if not a blob header
  return header;
}

/**
 * Makes the rename durable (POSIX: a new directory entry needs an fsync of the directory).
 * Best effort: some platforms (Windows) cannot open a directory for syncing.
 */
async function syncFolder(folder: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(folder, 'r');
    await handle.sync();
  } catch {
    // Not fatal: the file itself is synced; only the entry's durability across power loss is at stake.
  } finally {
    await handle?.close();
  }
}

/** Counts and hashes the plaintext; holds the last chunk back until both match. */
function verifyPlaintext(size: number, sha256: string): Transform {
  const hash = createHash('sha256');
  let seen = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      hash.update(chunk);
      seen += chunk.length;
      const previous = held;
      held = chunk;
      done(null, previous);
    },
    flush(done: TransformCallback) {
      if (seen !== size || hash.digest('hex') !== sha256.toLowerCase()) {
        done(fileIntegrityError());
        return;
      }
      done(null, held);
    },
  });
}
