import {
  type PatientIdentity,
  type PlannedPatient,
  type PlannedRecord,
  parseBody,
  type Sensitivity,
} from '../chart/model.ts';
import { V3_ACT_CODE, V3_CONFIDENTIALITY } from './codes.ts';
import { mapPatient } from './import-patient.ts';
import { CLINICAL_TYPES, type ClinicalType, type MappedResource, mapResource } from './import-resources.ts';
import { defined, fail, importError, isJsonObject, Obj, validated } from './read.ts';

/** What a FHIR bundle will load: patients with their records, and resources planned per type. */
export interface ImportPlan {
  readonly patients: PlannedPatient[];
  /** Planned resources per FHIR type, e.g. `{ Patient: 2, Encounter: 5 }`. */
  readonly counts: Record<string, number>;
}

export interface ParseBundleOptions {
  /** Largest accepted input, in UTF-8 bytes. */
  readonly maxBytes: number;
}

const BUNDLE_TYPES = ['collection', 'transaction', 'batch', 'document'];

/**
 * Parses a FHIR R4 Bundle (JSON; type collection, transaction, batch or document) into an
 * import plan. Pure: nothing is loaded. Accepts Patient, Encounter, Observation, Condition,
 * Procedure, MedicationStatement, CarePlan (-> `therapy-plan`) and DocumentReference (-> `note`
 * when it is a `clinical-note` with inline text/plain data, else `document` metadata); a
 * document bundle's Composition is skipped. Resources that FHIR marks entered-in-error and whose
 * record body cannot say so are skipped and not counted.
 *
 * Each clinical resource names its patient in `subject.reference` (an entry's fullUrl, or
 * `Patient/<id>`) and may name an encounter the same way. Each patient's records come out
 * encounters first, otherwise in bundle order.
 *
 * Throws CUSTOS_ERR_IMPORT with a one-line message `<path>: <problem>` that names the entry and
 * field and never the value: oversized input, bad JSON, not a Bundle, unsupported resource
 * type, missing or invalid field, unresolved reference, duplicate fullUrl.
 *
 * @example
 *   const plan = parseBundle(await readFile(path, 'utf8'), { maxBytes: 50 * 1024 * 1024 });
 *   for (const p of plan.patients) await loader.load(ctx, p);
 */
export function parseBundle(text: string, options: ParseBundleOptions): ImportPlan {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > options.maxBytes) {
    fail('', `bundle is ${bytes} bytes, over the size limit of ${options.maxBytes} bytes`);
  }
  const root = parseJson(text);
  if (!isJsonObject(root) || root.resourceType !== 'Bundle') {
    fail('resourceType', 'not a FHIR Bundle');
  }
  const bundle = new Obj(root, '');
  const type = bundle.reqStr('type');
  if (!BUNDLE_TYPES.includes(type)) {
    fail('type', `must be one of ${BUNDLE_TYPES.join(', ')}`);
  }
  const index = indexEntries(bundle.list('entry'), type === 'document');
  return plan(index);
}

interface IndexedEntry {
  readonly index: number;
  readonly localRef: string;
  readonly type: 'Patient' | ClinicalType;
  readonly resource: Obj;
}

interface Index {
  readonly entries: readonly IndexedEntry[];
  readonly byUrl: ReadonlyMap<string, IndexedEntry>;
  /** `Type/id` -> entry; `null` when two entries share it, so a reference to it is ambiguous. */
  readonly byTypeId: ReadonlyMap<string, IndexedEntry | null>;
}

const SUPPORTED: readonly string[] = ['Patient', ...CLINICAL_TYPES];

function indexEntries(list: readonly Obj[], isDocument: boolean): Index {
  const entries: IndexedEntry[] = [];
  const byUrl = new Map<string, IndexedEntry>();
  const byTypeId = new Map<string, IndexedEntry | null>();
  list.forEach((entry, index) => {
    const resource = entry.reqObj('resource');
    const type = resource.reqStr('resourceType');
    if (isDocument && type === 'Composition') {
      return; // the document's table of contents; its sections name the entries we do import
    }
    if (!SUPPORTED.includes(type)) {
      fail(resource.at('resourceType'), 'unsupported resource type');
    }
    const id = resource.str('id');
    const localRef =
      entry.str('fullUrl') ??
      (id === undefined
        ? fail(entry.at('fullUrl'), 'is required when resource.id is absent')
        : `${type}/${id}`);
    const previous = byUrl.get(localRef);
    if (previous !== undefined) {
      fail(entry.at('fullUrl'), `duplicates the fullUrl of entry[${previous.index}]`);
    }
    const indexed: IndexedEntry = { index, localRef, type: type as IndexedEntry['type'], resource };
    entries.push(indexed);
    byUrl.set(localRef, indexed);
    if (id !== undefined) {
      const key = `${type}/${id}`;
      byTypeId.set(key, byTypeId.has(key) ? null : indexed);
    }
  });
  return { entries, byUrl, byTypeId };
}

/** The entry a Reference element names, which must be of `type`. */
function resolve(index: Index, ref: Obj, type: string): IndexedEntry {
  const field = ref.at('reference');
  const target = ref.reqStr('reference');
  const hit = index.byUrl.get(target) ?? index.byTypeId.get(target);
  if (hit === null) {
    fail(field, `names more than one ${type} in the bundle`);
  }
  if (hit === undefined || hit.type !== type) {
    fail(field, `does not name ${article(type)} ${type} in the bundle`);
  }
  return hit;
}

interface Draft {
  readonly entry: IndexedEntry;
  readonly mapped: MappedResource;
  readonly patient: IndexedEntry;
}

function plan(index: Index): ImportPlan {
  const counts: Record<string, number> = {};
  const count = (type: string) => {
    counts[type] = (counts[type] ?? 0) + 1;
  };
  const identities = new Map<IndexedEntry, PatientIdentity>();
  const drafts: Draft[] = [];
  for (const entry of index.entries) {
    if (entry.type === 'Patient') {
      identities.set(entry, mapPatient(entry.resource));
      count('Patient');
      continue;
    }
    const mapped = mapResource(entry.type, entry.resource);
    const patient = resolve(index, entry.resource.reqObj('subject'), 'Patient');
    if (mapped.encounter !== undefined) {
      resolve(index, mapped.encounter, 'Encounter');
    }
    if (!mapped.enteredInError) {
      drafts.push({ entry, mapped, patient });
      count(entry.type);
    }
  }
  const planned = new Set(drafts.filter((d) => d.mapped.kind === 'encounter').map((d) => d.entry));
  const records = new Map<IndexedEntry, PlannedRecord[]>();
  // Encounters first, so the loader knows an encounter's id before a record points to it.
  const ordered = [
    ...drafts.filter((d) => d.mapped.kind === 'encounter'),
    ...drafts.filter((d) => d.mapped.kind !== 'encounter'),
  ];
  for (const d of ordered) {
    const { entry, mapped } = d;
    const body = validated(
      (b) => parseBody(mapped.kind, b, ''),
      defined(mapped.body),
      entry.resource.path,
      mapped.fields,
    );
    const encounter =
      mapped.encounter === undefined ? undefined : resolve(index, mapped.encounter, 'Encounter');
    const record: PlannedRecord = {
      localRef: entry.localRef,
      kind: mapped.kind,
      sensitivity: sensitivity(entry.resource),
      ...(mapped.authorId === undefined ? {} : { authorId: mapped.authorId }),
      body,
      // An encounter that is itself skipped (entered in error) leaves the record without one.
      ...(encounter !== undefined && planned.has(encounter) ? { encounterRef: encounter.localRef } : {}),
    };
    const list = records.get(d.patient) ?? [];
    list.push(record);
    records.set(d.patient, list);
  }
  const patients: PlannedPatient[] = [...identities].map(([entry, identity]) => ({
    fullUrl: entry.localRef,
    identity,
    records: records.get(entry) ?? [],
  }));
  return { patients, counts };
}

/** meta.security: v3-ActCode PSY -> psychotherapy; v3-Confidentiality R or V -> restricted. */
function sensitivity(resource: Obj): Sensitivity {
  const labels = resource.obj('meta')?.list('security') ?? [];
  const has = (system: string, codes: readonly string[]) =>
    labels.some((l) => l.str('system') === system && codes.includes(l.str('code') ?? ''));
  if (has(V3_ACT_CODE, ['PSY'])) {
    return 'psychotherapy';
  }
  return has(V3_CONFIDENTIALITY, ['R', 'V']) ? 'restricted' : 'normal';
}

/**
 * JSON.parse, with an error that says where and never quotes the input: V8's message for an
 * unexpected token embeds a slice of the text, so only its fixed phrase and position are kept,
 * and the original error is not attached as `cause` (loggers print causes).
 */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = e instanceof Error ? e.message : '';
    const at = /^(.*?) in JSON at position (\d+)/.exec(message);
    if (at?.[1] !== undefined && at[2] !== undefined) {
      const pos = Number(at[2]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const column = pos - before.lastIndexOf('\n');
      const phrase = at[1].startsWith('Unexpected token') ? 'unexpected token' : lowerFirst(at[1]);
      throw importError('', `bundle is not valid JSON: ${phrase} at line ${line} column ${column}`);
    }
    if (/Unexpected end of JSON input/.test(message)) {
      throw importError('', 'bundle is not valid JSON: unexpected end of input');
    }
    throw importError('', 'bundle is not valid JSON: unexpected token');
  }
}

const article = (word: string): string => (/^[AEIOU]/.test(word) ? 'an' : 'a');

const lowerFirst = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);
