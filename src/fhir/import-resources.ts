import type { RecordKind } from '../chart/model.ts';
import {
  CLINICAL_NOTE,
  CONDITION_CLINICAL,
  CONDITION_VER_STATUS,
  CUSTOS_ENCOUNTER_TYPE_SYSTEM,
  CUSTOS_USER_SYSTEM,
  US_CORE_DOCREF_CATEGORY,
} from './codes.ts';
import { fail, type Obj } from './read.ts';

/**
 * One clinical FHIR resource mapped to a record body, before validation. The body is built
 * from what is present; the model's `parseBody` decides what is missing or malformed, and
 * `fields` tells where in the resource each body field came from, for the error path.
 */
export interface MappedResource {
  readonly kind: RecordKind;
  readonly body: Record<string, unknown>;
  readonly fields: Readonly<Record<string, string>>;
  /** The Reference element naming the record's encounter, if any. */
  readonly encounter?: Obj | undefined;
  readonly authorId?: string | undefined;
  /** FHIR says the resource was entered in error and the body cannot say so: it is not imported. */
  readonly enteredInError: boolean;
}

export const CLINICAL_TYPES = [
  'Encounter',
  'Observation',
  'Condition',
  'Procedure',
  'MedicationStatement',
  'CarePlan',
  'DocumentReference',
] as const;
export type ClinicalType = (typeof CLINICAL_TYPES)[number];

export function mapResource(type: ClinicalType, r: Obj): MappedResource {
  switch (type) {
    case 'Encounter':
      return encounter(r);
    case 'Observation':
      return observation(r);
    case 'Condition':
      return condition(r);
    case 'Procedure':
      return procedure(r);
    case 'MedicationStatement':
      return medication(r);
    case 'CarePlan':
      return carePlan(r);
    case 'DocumentReference':
      return documentReference(r);
    default: {
      const never: never = type;
      return fail(r.at('resourceType'), `unsupported resource type ${String(never)}`);
    }
  }
}

function encounter(r: Obj): MappedResource {
  const status = r.str('status');
  const cls = r.obj('class')?.str('code');
  const period = r.obj('period');
  const type = r
    .list('type')
    .flatMap((t) => t.list('coding'))
    .find((c) => c.str('system') === CUSTOS_ENCOUNTER_TYPE_SYSTEM);
  return {
    kind: 'encounter',
    body: {
      // Without a Custos type, the class decides: the model needs one and these are the plain readings.
      type: type?.str('code') ?? (cls === 'VR' ? 'telehealth' : cls === 'HH' ? 'home-visit' : 'visit'),
      status,
      class: cls,
      start: period?.str('start'),
      end: period?.str('end'),
      reason: r
        .list('reasonCode')
        .map(conceptText)
        .find((t) => t !== undefined),
      location: r
        .list('location')
        .map((l) => l.obj('location')?.str('display'))
        .find((t) => t !== undefined),
      clinicianId: userId(r.list('participant')[0]?.obj('individual')),
    },
    fields: {
      type: 'type',
      class: 'class.code',
      start: 'period.start',
      end: 'period.end',
      reason: 'reasonCode',
      location: 'location',
      clinicianId: 'participant',
    },
    enteredInError: status === 'entered-in-error',
  };
}

function observation(r: Obj): MappedResource {
  const range = r.list('referenceRange')[0];
  const low = range?.obj('low');
  const high = range?.obj('high');
  const vq = r.obj('valueQuantity');
  const vs = r.str('valueString') ?? conceptText(r.obj('valueCodeableConcept'));
  return {
    kind: 'observation',
    body: {
      status: r.str('status'),
      code: coding(r.obj('code')),
      value: vq !== undefined ? { quantity: quantity(vq) } : vs !== undefined ? { text: vs } : undefined,
      referenceRange:
        range === undefined
          ? undefined
          : {
              low: low?.num('value'),
              high: high?.num('value'),
              unit: low?.str('unit') ?? high?.str('unit'),
              text: range.str('text'),
            },
      effective:
        r.str('effectiveDateTime') ?? r.str('effectiveInstant') ?? r.obj('effectivePeriod')?.str('start'),
      note: noteText(r),
    },
    fields: { value: vq !== undefined ? 'valueQuantity' : 'valueString', effective: 'effectiveDateTime' },
    encounter: r.obj('encounter'),
    enteredInError: false,
  };
}

function condition(r: Obj): MappedResource {
  const code = r.obj('code');
  const verification = statusCode(r.obj('verificationStatus'), CONDITION_VER_STATUS);
  return {
    kind: 'condition',
    body: {
      code: coding(code),
      text: code?.str('text'),
      clinicalStatus: statusCode(r.obj('clinicalStatus'), CONDITION_CLINICAL),
      verificationStatus: verification,
      onset: dateOf(r.str('onsetDateTime')),
      abatement: dateOf(r.str('abatementDateTime')),
      note: noteText(r),
    },
    fields: { text: 'code.text', onset: 'onsetDateTime', abatement: 'abatementDateTime' },
    encounter: r.obj('encounter'),
    authorId: userId(r.obj('recorder')),
    enteredInError: verification === 'entered-in-error',
  };
}

function procedure(r: Obj): MappedResource {
  const status = r.str('status');
  return {
    kind: 'procedure',
    body: {
      status,
      code: coding(r.obj('code')),
      performed: r.str('performedDateTime') ?? r.obj('performedPeriod')?.str('start'),
      note: noteText(r),
    },
    fields: { performed: 'performedDateTime' },
    encounter: r.obj('encounter'),
    authorId: userId(r.obj('recorder')),
    enteredInError: status === 'entered-in-error',
  };
}

function medication(r: Obj): MappedResource {
  const status = r.str('status');
  const dosage = r.list('dosage')[0];
  const dose = dosage?.list('doseAndRate')[0]?.obj('doseQuantity');
  const period = r.obj('effectivePeriod');
  return {
    kind: 'medication',
    body: {
      status,
      medication: coding(r.obj('medicationCodeableConcept')),
      dosage: {
        text: dosage?.str('text'),
        route: conceptText(dosage?.obj('route')),
        dose: dose === undefined ? undefined : quantity(dose),
      },
      period: { start: dateOf(period?.str('start')), end: dateOf(period?.str('end')) },
      note: noteText(r),
    },
    fields: { medication: 'medicationCodeableConcept', dosage: 'dosage', period: 'effectivePeriod' },
    enteredInError: status === 'entered-in-error',
  };
}

function carePlan(r: Obj): MappedResource {
  const status = r.str('status');
  const period = r.obj('period');
  return {
    kind: 'therapy-plan',
    body: {
      status,
      title: r.str('title'),
      description: r.str('description'),
      goals: r.list('goal').flatMap((g) => g.str('display') ?? []),
      period: { start: dateOf(period?.str('start')), end: dateOf(period?.str('end')) },
    },
    fields: { goals: 'goal' },
    authorId: userId(r.obj('author')),
    enteredInError: status === 'entered-in-error',
  };
}

function documentReference(r: Obj): MappedResource {
  const status = r.str('status');
  const category = r.list('category');
  const attachment = r.list('content')[0]?.obj('attachment');
  const contentType = attachment?.str('contentType');
  const data = attachment?.str('data');
  const isNote =
    category.some((c) =>
      c
        .list('coding')
        .some((k) => k.str('system') === US_CORE_DOCREF_CATEGORY && k.str('code') === CLINICAL_NOTE),
    ) &&
    contentType !== undefined &&
    /^text\/plain(;|$)/i.test(contentType) &&
    data !== undefined;
  const type = r.obj('type');
  const title = type?.str('text') ?? type?.list('coding')[0]?.str('display');
  const base = {
    encounter: r.obj('context')?.list('encounter')[0],
    authorId: r
      .list('author')
      .map(userId)
      .find((a) => a !== undefined),
    enteredInError: status === 'entered-in-error',
  };
  if (isNote && attachment !== undefined) {
    return {
      ...base,
      kind: 'note',
      body: { title, body: decodeText(data, attachment.at('data')), date: r.str('date') },
      fields: { title: 'type.text', body: 'content[0].attachment.data' },
    };
  }
  const cat = category[0];
  return {
    ...base,
    kind: 'document',
    body: {
      title: title ?? attachment?.str('title'),
      description: r.str('description'),
      contentType,
      date: r.str('date'),
      fileName: attachment?.str('title'),
      size: attachment?.num('size'),
      category: cat === undefined ? undefined : (conceptText(cat) ?? cat.list('coding')[0]?.str('code')),
    },
    fields: {
      title: 'type.text',
      contentType: 'content[0].attachment.contentType',
      fileName: 'content[0].attachment.title',
      size: 'content[0].attachment.size',
    },
  };
}

/** The first coding with a system and a code (else the first coding), as a model Coding. */
function coding(cc: Obj | undefined): Record<string, unknown> | undefined {
  const codings = cc?.list('coding') ?? [];
  const c = codings.find((k) => k.has('system') && k.has('code')) ?? codings[0];
  return c === undefined
    ? undefined
    : { system: c.str('system'), code: c.str('code'), display: c.str('display') };
}

function conceptText(cc: Obj | undefined): string | undefined {
  return (
    cc?.str('text') ??
    cc
      ?.list('coding')
      .map((c) => c.str('display'))
      .find((d) => d !== undefined)
  );
}

function statusCode(cc: Obj | undefined, system: string): string | undefined {
  const codings = cc?.list('coding') ?? [];
  return (codings.find((c) => c.str('system') === system) ?? codings[0])?.str('code');
}

function quantity(q: Obj): Record<string, unknown> {
  return {
    value: q.num('value'),
    unit: q.str('unit') ?? q.str('code'),
    system: q.str('system'),
    code: q.str('code'),
  };
}

/** All annotations joined; the model keeps one note per record. */
function noteText(r: Obj): string | undefined {
  const texts = r
    .list('note')
    .map((n) => n.str('text'))
    .filter((t) => t !== undefined);
  return texts.length === 0 ? undefined : texts.join('\n\n');
}

/** A Custos user id from a Reference's identifier in `urn:custos:user`. */
function userId(ref: Obj | undefined): string | undefined {
  const id = ref?.obj('identifier');
  return id?.str('system') === CUSTOS_USER_SYSTEM ? id.str('value') : undefined;
}

/**
 * The model keeps day precision for onset, abatement and periods; a FHIR dateTime there is cut
 * to its date as written (no zone conversion). Anything else is left for validation to reject.
 */
function dateOf(v: string | undefined): string | undefined {
  return v !== undefined && /^\d{4}-\d{2}-\d{2}(T|$)/.test(v) ? v.slice(0, 10) : v;
}

function decodeText(data: string | undefined, field: string): string | undefined {
  if (data === undefined) {
    return undefined;
  }
  const compact = data.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    fail(field, 'must be base64');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(compact, 'base64'));
  } catch {
    // The decoder's own error names no field; ours does, and carries no bytes.
    return fail(field, 'must be UTF-8 text');
  }
}
