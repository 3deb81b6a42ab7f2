import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  nodeHash,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';

// ---- an independent, naive implementation straight from RFC 9162 2.1 (slices, recursion) ----

const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
  }
  return h.digest();
};
const largestPow2Below = (n: number): number => {
  let k = 1;
  while (k * 2 < n) {
    k *= 2;
  }
  return k;
};
const naiveLeaf = (d: Uint8Array): Buffer => sha(Buffer.from([0]), d);
/** MTH over raw entries. */
function naiveMth(d: readonly Uint8Array[]): Buffer {
  if (d.length === 0) {
    return sha();
  }
  if (d.length === 1) {
    return naiveLeaf(d[0]!);
  }
  const k = largestPow2Below(d.length);
  return sha(Buffer.from([1]), naiveMth(d.slice(0, k)), naiveMth(d.slice(k)));
}
function naivePath(m: number, d: readonly Uint8Array[]): Buffer[] {
  if (d.length === 1) {
    return [];
  }
  const k = largestPow2Below(d.length);
  return m < k
    ? [...naivePath(m, d.slice(0, k)), naiveMth(d.slice(k))]
    : [...naivePath(m - k, d.slice(k)), naiveMth(d.slice(0, k))];
}
function naiveSubproof(m: number, d: readonly Uint8Array[], b: boolean): Buffer[] {
  if (m === d.length) {
    return b ? [] : [naiveMth(d)];
  }
  const k = largestPow2Below(d.length);
  return m <= k
    ? [...naiveSubproof(m, d.slice(0, k), b), naiveMth(d.slice(k))]
    : [...naiveSubproof(m - k, d.slice(k), false), naiveMth(d.slice(0, k))];
}

// ---- the CT reference test data (RFC 6962 reference implementation / transparency-dev) ----

const INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((h) => Buffer.from(h, 'hex'));
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// Node hashes of the reference tree used by the proof vectors below.
const N = {
  leaf0: '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  leaf1: '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  leaf4: 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  n01: 'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  n23: '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
  n45: '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
  n67: 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  n0123: 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  n4567: '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
};
// (0-based leaf index, tree size, proof) and (size1, size2, proof), from the CT test suites.
const INCLUSION: [number, number, string[]][] = [
  [0, 1, []],
  [0, 8, [N.leaf1, N.n23, N.n4567]],
  [5, 8, [N.leaf4, N.n67, N.n0123]],
  [2, 3, [N.n01]],
  [1, 5, [N.leaf0, N.n23, N.leaf4]],
];
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [1, 8, [N.leaf1, N.n23, N.n4567]],
  [6, 8, [N.n45, N.n67, N.n0123]],
  [2, 5, [N.n23, N.leaf4]],
];

const LEAVES = INPUTS.map(leafHash);
const hex = (bs: readonly Uint8Array[]): string[] => bs.map((b) => Buffer.from(b).toString('hex'));
const randomLeaves = (n: number): Buffer[] => {
  const bytes = randomBytes(16 * n);
  return Array.from({ length: n }, (_, i) => leafHash(bytes.subarray(16 * i, 16 * i + 16)));
};

/** Copies of `proof`, each with one bit flipped in one element (first, middle and last bytes). */
function tampered(proof: readonly Buffer[]): Buffer[][] {
  const out: Buffer[][] = [];
  proof.forEach((_, i) => {
    for (const byte of [0, 17, 31]) {
      const copy = proof.map((p) => Buffer.from(p));
      copy[i]![byte]! ^= 1 << (byte % 8);
      out.push(copy);
    }
  });
  return out;
}
const flip = (h: Buffer): Buffer => {
  const c = Buffer.from(h);
  c[0]! ^= 0x80;
  return c;
};

describe('hashing (RFC 9162 2.1.1)', () => {
  it('hashes leaves, nodes and the empty tree with domain separation', () => {
    expect(emptyRoot().toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(rootFromLeafHashes([]).equals(emptyRoot())).toBe(true);
    expect(leafHash(new Uint8Array()).toString('hex')).toBe(ROOTS[0]);
    expect(nodeHash(LEAVES[0]!, LEAVES[1]!).toString('hex')).toBe(N.n01);
    expect(() => nodeHash(Buffer.alloc(31), LEAVES[0]!)).toThrow(RangeError);
    expect(() => rootFromLeafHashes([Buffer.alloc(33)])).toThrow(RangeError);
  });

  it('matches the CT reference roots and the naive MTH for sizes 1-8', () => {
    for (let n = 1; n <= 8; n++) {
      const root = rootFromLeafHashes(LEAVES.slice(0, n)).toString('hex');
      expect(root).toBe(ROOTS[n - 1]);
      expect(root).toBe(naiveMth(INPUTS.slice(0, n)).toString('hex'));
    }
  });

  it('matches the naive MTH on random trees up to 70 leaves', () => {
    for (let n = 0; n <= 70; n++) {
      const entries = Array.from({ length: n }, () => randomBytes(n % 5));
      expect(rootFromLeafHashes(entries.map(leafHash)).equals(naiveMth(entries))).toBe(true);
    }
  });
});

describe('MerkleFrontier', () => {
  it('has the MTH at every size up to 300, also after a toJSON/fromJSON round trip', () => {
    const leaves = randomLeaves(300);
    const f = new MerkleFrontier();
    expect(f.root().equals(emptyRoot())).toBe(true);
    for (let n = 1; n <= 300; n++) {
      f.append(leaves[n - 1]!);
      const want = rootFromLeafHashes(leaves.slice(0, n));
      expect(f.size).toBe(n);
      expect(f.root().equals(want)).toBe(true);
      const json = JSON.parse(JSON.stringify(f));
      expect(json.hashes).toHaveLength(n.toString(2).replaceAll('0', '').length);
      const back = MerkleFrontier.fromJSON(json);
      expect(back.size).toBe(n);
      expect(back.root().equals(want)).toBe(true);
    }
    // Resumed and cloned frontiers keep growing identically and independently.
    const resumed = MerkleFrontier.fromJSON(f.toJSON());
    const clone = f.clone();
    const extra = randomLeaves(40);
    for (const l of extra) {
      resumed.append(l);
    }
    expect(resumed.root().equals(rootFromLeafHashes([...leaves, ...extra]))).toBe(true);
    expect(clone.root().equals(rootFromLeafHashes(leaves))).toBe(true);
    expect(f.size).toBe(300);
  });

  it('matches the CT reference roots', () => {
    const f = new MerkleFrontier();
    LEAVES.forEach((l, i) => {
      f.append(l);
      expect(f.root().toString('hex')).toBe(ROOTS[i]);
    });
  });

  it('rejects malformed stored state', () => {
    const good = new MerkleFrontier();
    for (const l of LEAVES.slice(0, 5)) {
      good.append(l);
    }
    const { size, hashes } = good.toJSON();
    expect(MerkleFrontier.fromJSON({ size, hashes }).root().toString('hex')).toBe(ROOTS[4]);
    const bad: unknown[] = [
      null,
      {},
      { size: -1, hashes: [] },
      { size: 1.5, hashes: [] },
      { size: 7, hashes },
      { size, hashes: hashes.slice(1) },
      { size, hashes: [hashes[0], 'AAAA'] },
      { size, hashes: [hashes[0], `${hashes[1]}=`] },
      { size, hashes: [hashes[0], 7] },
    ];
    for (const b of bad) {
      expect(() => MerkleFrontier.fromJSON(b)).toThrow();
    }
    expect(() => good.append(Buffer.alloc(31))).toThrow(RangeError);
  });
});

describe('inclusion proofs (RFC 9162 2.1.3)', () => {
  it('reproduces the CT reference proofs', () => {
    for (const [index, size, want] of INCLUSION) {
      const proof = inclusionProof(index, LEAVES.slice(0, size));
      expect(hex(proof)).toEqual(want);
      const root = Buffer.from(ROOTS[size - 1]!, 'hex');
      expect(verifyInclusion({ index, treeSize: size, leafHash: LEAVES[index]!, proof, root })).toBe(true);
    }
  });

  it('verifies every (index, size <= 8), and fails on any tampering', () => {
    for (let size = 1; size <= 8; size++) {
      const leaves = LEAVES.slice(0, size);
      const root = rootFromLeafHashes(leaves);
      for (let index = 0; index < size; index++) {
        const proof = inclusionProof(index, leaves);
        expect(hex(proof)).toEqual(hex(naivePath(index, INPUTS.slice(0, size))));
        const ok = { index, treeSize: size, leafHash: leaves[index]!, proof, root };
        expect(verifyInclusion(ok)).toBe(true);
        for (const p of tampered(proof)) {
          expect(verifyInclusion({ ...ok, proof: p })).toBe(false);
        }
        expect(verifyInclusion({ ...ok, root: flip(root) })).toBe(false);
        expect(verifyInclusion({ ...ok, leafHash: flip(leaves[index]!) })).toBe(false);
        if (proof.length > 0) {
          expect(verifyInclusion({ ...ok, proof: proof.slice(1) })).toBe(false);
        }
        expect(verifyInclusion({ ...ok, proof: [...proof, root] })).toBe(false);
        expect(verifyInclusion({ ...ok, proof: [LEAVES[0]!, ...proof] })).toBe(false);
        for (let other = -1; other <= 9; other++) {
          if (other !== index) {
            expect(verifyInclusion({ ...ok, index: other })).toBe(false);
          }
        }
        // Another size, with that tree's own root: the proof must not carry over.
        for (let s2 = 0; s2 <= 9; s2++) {
          if (s2 !== size) {
            const r2 = s2 <= 8 ? rootFromLeafHashes(LEAVES.slice(0, s2)) : root;
            expect(verifyInclusion({ ...ok, treeSize: s2, root: r2 })).toBe(false);
          }
        }
        expect(verifyInclusion({ ...ok, index: Number.NaN })).toBe(false);
        expect(verifyInclusion({ ...ok, index: index + 0.5 })).toBe(false);
      }
    }
  });

  it('rejects indexes outside the tree', () => {
    expect(() => inclusionProof(0, [])).toThrow(RangeError);
    expect(() => inclusionProof(3, LEAVES.slice(0, 3))).toThrow(RangeError);
    expect(() => inclusionProof(-1, LEAVES)).toThrow(RangeError);
  });
});

describe('consistency proofs (RFC 9162 2.1.4)', () => {
  it('reproduces the CT reference proofs', () => {
    for (const [size1, size2, want] of CONSISTENCY) {
      const proof = consistencyProof(size1, LEAVES.slice(0, size2));
      expect(hex(proof)).toEqual(want);
      const [root1, root2] = [ROOTS[size1 - 1]!, ROOTS[size2 - 1]!].map((h) => Buffer.from(h, 'hex'));
      expect(verifyConsistency({ size1, size2, root1: root1!, root2: root2!, proof })).toBe(true);
    }
  });

  it('verifies every (m <= n <= 8), and fails on any tampering', () => {
    const roots = [emptyRoot(), ...ROOTS.map((h) => Buffer.from(h, 'hex'))];
    for (let n = 1; n <= 8; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(m, LEAVES.slice(0, n));
        expect(hex(proof)).toEqual(hex(naiveSubproof(m, INPUTS.slice(0, n), true)));
        const ok = { size1: m, size2: n, root1: roots[m]!, root2: roots[n]!, proof };
        expect(verifyConsistency(ok)).toBe(true);
        for (const p of tampered(proof)) {
          expect(verifyConsistency({ ...ok, proof: p })).toBe(false);
        }
        expect(verifyConsistency({ ...ok, root1: flip(roots[m]!) })).toBe(false);
        expect(verifyConsistency({ ...ok, root2: flip(roots[n]!) })).toBe(false);
        expect(verifyConsistency({ ...ok, proof: [...proof, roots[n]!] })).toBe(false);
        if (proof.length > 0) {
          expect(verifyConsistency({ ...ok, proof: proof.slice(1) })).toBe(false);
          expect(verifyConsistency({ ...ok, proof: proof.slice(0, -1) })).toBe(false);
        }
        // Other sizes, each with its own true root: the proof must not carry over.
        for (let s1 = 0; s1 <= 8; s1++) {
          for (let s2 = 0; s2 <= 8; s2++) {
            if ((s1 !== m || s2 !== n) && !(s1 === s2 && proof.length === 0)) {
              const other = { ...ok, size1: s1, size2: s2, root1: roots[s1]!, root2: roots[s2]! };
              expect(verifyConsistency(other)).toBe(false);
            }
          }
        }
      }
    }
  });

  it('rejects sizes outside 0 < m <= n', () => {
    expect(() => consistencyProof(0, LEAVES)).toThrow(RangeError);
    expect(() => consistencyProof(9, LEAVES)).toThrow(RangeError);
    const [r4, r8] = [rootFromLeafHashes(LEAVES.slice(0, 4)), rootFromLeafHashes(LEAVES)];
    expect(verifyConsistency({ size1: 8, size2: 4, root1: r8, root2: r4, proof: [] })).toBe(false);
    expect(verifyConsistency({ size1: 0, size2: 8, root1: emptyRoot(), root2: r8, proof: [] })).toBe(false);
    expect(verifyConsistency({ size1: 4, size2: 8, root1: r4, root2: r8, proof: [] })).toBe(false);
    expect(verifyConsistency({ size1: 8, size2: 8, root1: r8, root2: r8, proof: [] })).toBe(true);
    expect(verifyConsistency({ size1: 8, size2: 8, root1: r8, root2: r8, proof: [r8] })).toBe(false);
  });
});

describe('larger trees', () => {
  for (const n of [1000, 65_537]) {
    it(`proves random indexes and sizes in a tree of ${n} leaves`, () => {
      const leaves = randomLeaves(n);
      const picks = [0, 1, n - 2, n - 1, ...Array.from({ length: 4 }, () => Math.floor(Math.random() * n))];
      const sizes = [1, 2, 512, n - 1, n, ...picks.map((p) => p + 1)];
      // One streaming pass gives the root at every size needed below.
      const rootAt = new Map<number, Buffer>();
      const wanted = new Set(sizes.flatMap((m) => [m - 1, m]));
      const f = new MerkleFrontier();
      for (const l of leaves) {
        f.append(l);
        if (wanted.has(f.size)) {
          rootAt.set(f.size, f.root());
        }
      }
      const root = rootFromLeafHashes(leaves);
      expect(f.root().equals(root)).toBe(true);
      for (const index of picks) {
        const proof = inclusionProof(index, leaves);
        const ok = { index, treeSize: n, leafHash: leaves[index]!, proof, root };
        expect(verifyInclusion(ok)).toBe(true);
        expect(verifyInclusion({ ...ok, proof: tampered(proof)[proof.length]! })).toBe(false);
        expect(verifyInclusion({ ...ok, index: (index + 1) % n })).toBe(false);
      }
      for (const m of sizes) {
        const root1 = rootAt.get(m)!;
        const proof = consistencyProof(m, leaves);
        const ok = { size1: m, size2: n, root1, root2: root, proof };
        expect(verifyConsistency(ok)).toBe(true);
        for (const p of tampered(proof).filter((_, i) => i % 7 === 0)) {
          expect(verifyConsistency({ ...ok, proof: p })).toBe(false);
        }
        if (m > 1) {
          expect(verifyConsistency({ ...ok, size1: m - 1, root1: rootAt.get(m - 1)! })).toBe(false);
        }
      }
    });
  }
});

describe('properties (fast-check)', () => {
  it('every inclusion and consistency proof verifies, and a one-bit change fails', () => {
    const leaves = randomLeaves(300);
    const roots = [emptyRoot()];
    for (let n = 1; n <= 300; n++) {
      roots.push(rootFromLeafHashes(leaves.slice(0, n)));
    }
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.integer({ min: 0, max: n - 1 }),
              fc.integer({ min: 1, max: n }),
              fc.nat(),
              fc.integer({ min: 0, max: 255 }),
            ),
          ),
        ([n, index, m, which, bit]) => {
          const tree = leaves.slice(0, n);
          const ip = inclusionProof(index, tree);
          const inc = { index, treeSize: n, leafHash: tree[index]!, proof: ip, root: roots[n]! };
          expect(verifyInclusion(inc)).toBe(true);
          const flipBit = (h: Buffer): Buffer => {
            const c = Buffer.from(h);
            c[bit >> 3]! ^= 1 << (bit & 7);
            return c;
          };
          if (ip.length > 0) {
            const bad = ip.map((p, i) => (i === which % ip.length ? flipBit(p) : p));
            expect(verifyInclusion({ ...inc, proof: bad })).toBe(false);
          }
          expect(verifyInclusion({ ...inc, leafHash: flipBit(tree[index]!) })).toBe(false);
          expect(verifyInclusion({ ...inc, root: flipBit(roots[n]!) })).toBe(false);

          const cp = consistencyProof(m, tree);
          const con = { size1: m, size2: n, root1: roots[m]!, root2: roots[n]!, proof: cp };
          expect(verifyConsistency(con)).toBe(true);
          if (cp.length > 0) {
            const bad = cp.map((p, i) => (i === which % cp.length ? flipBit(p) : p));
            expect(verifyConsistency({ ...con, proof: bad })).toBe(false);
          }
          expect(verifyConsistency({ ...con, root1: flipBit(roots[m]!) })).toBe(false);
          expect(verifyConsistency({ ...con, root2: flipBit(roots[n]!) })).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });
});
