import type { ClinicalRecord, Coding, Patient, RecordBody, RecordKind } from '../chart/model.ts';
import {
  CLINICAL_NOTE,
  CONDITION_CLINICAL,
  CONDITION_VER_STATUS,
  CUSTOS_ENCOUNTER_TYPE_SYSTEM,
  CUSTOS_USER_SYSTEM,
  ENCOUNTER_CLASS_DISPLAY,
  GENDER_IDENTITY_EXT,
  IDENTIFIER_TYPE_CODES,
  NOTE_CONTENT_TYPE,
  US_CORE_DOCREF_CATEGORY,
  V2_IDENTIFIER_TYPE,
  V3_ACT_CODE,
  V3_CONFIDENTIALITY,
} from './codes.ts';
import type * as fhir4 from './r4.ts';

/**
 * Builds a FHIR R4 `collection` Bundle (https://hl7.org/fhir/R4/bundle.html) of one patient
 * and their records: the Patient first, then one entry per record in the given order.
 *
 * - Every entry's `fullUrl` is `urn:uuid:<custos id>` and `resource.id` is the Custos id;
 *   references between entries use those URNs. A reference to an encounter that is not in
 *   the export is left out rather than left dangling.
 * - Records with sensitivity `psychotherapy` are never exported (45 CFR 164.508(a)(2): they
 *   need their own authorization); `restricted` ones carry `meta.security` v3-Confidentiality R.
 * - Records with status `entered-in-error` are exported with that FHIR status.
 * - Pure: no clock, no I/O; the output contains no `null`, empty string or empty array.
 *
 * @example
 *   const bundle = toFhirBundle(patient, records);
 *   res.type('application/fhir+json').send(JSON.stringify(bundle));
 */
export function toFhirBundle(patient: Patient, records: readonly ClinicalRecord[]): fhir4.Bundle {
  const exported = records.filter((r) => r.sensitivity !== 'psychotherapy');
  const ctx: Ctx = {
    subject: { reference: urn(patient.id) },
    encounters: new Set(exported.filter((r) => r.kind === 'encounter').map((r) => r.id)),
  };
  const entry: fhir4.BundleEntry[] = [
    { fullUrl: urn(patient.id), resource: patientResource(patient) },
    ...exported.map((r) => ({ fullUrl: urn(r.id), resource: prune(recordResource(r, ctx)) })),
  ];
  return { resourceType: 'Bundle', type: 'collection', entry };
}

interface Ctx {
  readonly subject: fhir4.Reference;
  /** Ids of the encounters in this export; only these may be referenced. */
  readonly encounters: ReadonlySet<string>;
}

const urn = (id: string): string => `urn:uuid:${id}`;

function patientResource(p: Patient): fhir4.Patient {
  const id = p.identity;
  const names: NonNullable<fhir4.Patient['name']> = [
    { use: 'official', family: id.name.family, given: [...id.name.given] },
  ];
  if (id.name.preferred !== undefined) {
    names.push({ use: 'usual', given: [id.name.preferred] });
  }
  const telecom: NonNullable<fhir4.Patient['telecom']> = [];
  if (id.phone !== undefined) {
    telecom.push({ system: 'phone', value: id.phone });
  }
  if (id.email !== undefined) {
    telecom.push({ system: 'email', value: id.email });
  }
  const a = id.address;
  return prune({
    resourceType: 'Patient',
    id: p.id,
    extension:
      id.gender === undefined
        ? undefined
        : [
            {
              url: GENDER_IDENTITY_EXT,
              extension: [{ url: 'value', valueCodeableConcept: { text: id.gender } }],
            },
          ],
    identifier: id.identifiers.map((i) => ({
      type: { coding: [{ system: V2_IDENTIFIER_TYPE, code: IDENTIFIER_TYPE_CODES[i.type][0] }] },
      system: i.system,
      value: i.value,
    })),
    active: p.active,
    name: names,
    telecom,
    gender: id.sex,
    birthDate: id.birthDate,
    address:
      a === undefined
        ? undefined
        : [
            {
              line: [...a.lines],
              city: a.city,
              state: a.state,
              postalCode: a.postalCode,
              country: a.country,
            },
          ],
  });
}

function recordResource(r: ClinicalRecord, ctx: Ctx): fhir4.Resource {
  const base = {
    id: r.id,
    meta:
      r.sensitivity === 'restricted' ? { security: [{ system: V3_CONFIDENTIALITY, code: 'R' }] } : undefined,
  };
  const err = r.status === 'entered-in-error';
  const author = { identifier: { system: CUSTOS_USER_SYSTEM, value: r.authorId } };
  switch (r.kind) {
    case 'encounter': {
      const b = body(r, 'encounter');
      return {
        ...base,
        resourceType: 'Encounter',
        status: err ? 'entered-in-error' : b.status,
        class: { system: V3_ACT_CODE, code: b.class, display: ENCOUNTER_CLASS_DISPLAY[b.class] },
        type: [{ coding: [{ system: CUSTOS_ENCOUNTER_TYPE_SYSTEM, code: b.type }] }],
        subject: ctx.subject,
        participant:
          b.clinicianId === undefined
            ? undefined
            : [{ individual: { identifier: { system: CUSTOS_USER_SYSTEM, value: b.clinicianId } } }],
        period: { start: b.start, end: b.end },
        reasonCode: b.reason === undefined ? undefined : [{ text: b.reason }],
        location: b.location === undefined ? undefined : [{ location: { display: b.location } }],
      };
    }
    case 'observation': {
      const b = body(r, 'observation');
      const rr = b.referenceRange;
      return {
        ...base,
        resourceType: 'Observation',
        status: err ? 'entered-in-error' : b.status,
        code: concept(b.code),
        subject: ctx.subject,
        encounter: encounterRef(b.encounterId, ctx),
        effectiveDateTime: b.effective,
        valueQuantity: b.value !== undefined && 'quantity' in b.value ? { ...b.value.quantity } : undefined,
        valueString: b.value !== undefined && 'text' in b.value ? b.value.text : undefined,
        note: notes(b.note),
        referenceRange:
          rr === undefined
            ? undefined
            : [
                {
                  low: rr.low === undefined ? undefined : { value: rr.low, unit: rr.unit },
                  high: rr.high === undefined ? undefined : { value: rr.high, unit: rr.unit },
                  text: rr.text,
                },
              ],
      };
    }
    case 'condition': {
      const b = body(r, 'condition');
      // con-5: clinicalStatus SHALL NOT be present when verificationStatus is entered-in-error.
      return {
        ...base,
        resourceType: 'Condition',
        clinicalStatus: err ? undefined : concept({ system: CONDITION_CLINICAL, code: b.clinicalStatus }),
        verificationStatus: err
          ? concept({ system: CONDITION_VER_STATUS, code: 'entered-in-error' })
          : b.verificationStatus === undefined
            ? undefined
            : concept({ system: CONDITION_VER_STATUS, code: b.verificationStatus }),
        code: { ...concept(b.code), text: b.text },
        subject: ctx.subject,
        encounter: encounterRef(b.encounterId, ctx),
        onsetDateTime: b.onset,
        abatementDateTime: b.abatement,
        recorder: author,
        note: notes(b.note),
      };
    }
    case 'procedure': {
      const b = body(r, 'procedure');
      return {
        ...base,
        resourceType: 'Procedure',
        status: err ? 'entered-in-error' : b.status,
        code: concept(b.code),
        subject: ctx.subject,
        encounter: encounterRef(b.encounterId, ctx),
        performedDateTime: b.performed,
        recorder: author,
        note: notes(b.note),
      };
    }
    case 'medication': {
      const b = body(r, 'medication');
      return {
        ...base,
        resourceType: 'MedicationStatement',
        status: err ? 'entered-in-error' : b.status,
        medicationCodeableConcept: concept(b.medication),
        subject: ctx.subject,
        effectivePeriod: { ...b.period },
        note: notes(b.note),
        dosage: [
          {
            text: b.dosage.text,
            route: b.dosage.route === undefined ? undefined : { text: b.dosage.route },
            doseAndRate: b.dosage.dose === undefined ? undefined : [{ doseQuantity: { ...b.dosage.dose } }],
          },
        ],
      };
    }
    case 'therapy-plan': {
      const b = body(r, 'therapy-plan');
      // Goals are display-only references: valid R4 (Reference.display alone) and no invented
      // Goal resources with a lifecycle status we do not know.
      return {
        ...base,
        resourceType: 'CarePlan',
        status: err ? 'entered-in-error' : b.status,
        intent: 'plan',
        title: b.title,
        description: b.description,
        subject: ctx.subject,
        period: { ...b.period },
        author,
        goal: b.goals.map((g) => ({ display: g })),
      };
    }
    case 'note': {
      const b = body(r, 'note');
      const enc = encounterRef(b.encounterId, ctx);
      return {
        ...base,
        resourceType: 'DocumentReference',
        status: err ? 'entered-in-error' : 'current',
        type: b.title === undefined ? undefined : { text: b.title },
        category: [
          concept({ system: US_CORE_DOCREF_CATEGORY, code: CLINICAL_NOTE, display: 'Clinical Note' }),
        ],
        subject: ctx.subject,
        date: b.date,
        author: [author],
        content: [
          {
            attachment: {
              contentType: NOTE_CONTENT_TYPE,
              data: Buffer.from(b.body, 'utf8').toString('base64'),
            },
          },
        ],
        context: enc === undefined ? undefined : { encounter: [enc] },
      };
    }
    case 'document': {
      const b = body(r, 'document');
      return {
        ...base,
        resourceType: 'DocumentReference',
        status: err ? 'entered-in-error' : 'current',
        // R4 DocumentReference has no title element; the title is the text of its type.
        type: { text: b.title },
        category: b.category === undefined ? undefined : [{ text: b.category }],
        subject: ctx.subject,
        date: b.date,
        author: [author],
        description: b.description,
        content: [{ attachment: { contentType: b.contentType, title: b.fileName, size: b.size } }],
      };
    }
    default: {
      const never: never = r.kind;
      throw new TypeError(`unmapped record kind ${String(never)}`);
    }
  }
}

/** The record's body typed by its kind; `ClinicalRecord` is generic, not a discriminated union. */
const body = <K extends RecordKind>(r: ClinicalRecord, _kind: K): RecordBody<K> => r.body as RecordBody<K>;

const concept = (c: Coding): fhir4.CodeableConcept => ({
  coding: [{ system: c.system, code: c.code, display: c.display }],
});

const notes = (text: string | undefined): fhir4.Annotation[] | undefined =>
  text === undefined ? undefined : [{ text }];

const encounterRef = (id: string | undefined, ctx: Ctx): fhir4.Reference | undefined =>
  id !== undefined && ctx.encounters.has(id) ? { reference: urn(id) } : undefined;

/**
 * Drops `undefined`, empty arrays and empty objects, recursively: FHIR forbids empty elements
 * (ele-1) and JSON `null`, and the mappers above leave optional parts undefined.
 */
export function prune<T>(value: T): T {
  return pruneValue(value) as T;
}

function pruneValue(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(pruneValue).filter((v) => v !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = pruneValue(v);
      if (p !== undefined) {
        out[k] = p;
      }
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  return value === null || value === '' ? undefined : value;
}
