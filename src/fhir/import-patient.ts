import { type PatientIdentity, parseIdentity } from '../chart/model.ts';
import {
  GENDER_IDENTITY_EXT,
  GENDER_IDENTITY_EXT_R4,
  IDENTIFIER_TYPE_CODES,
  NATIONAL_ID_SYSTEMS,
  V2_IDENTIFIER_TYPE,
} from './codes.ts';
import { defined, type Obj, validated } from './read.ts';

/** Where each identity field comes from in a Patient resource, for error paths. */
const FIELDS = {
  name: 'name',
  sex: 'gender',
  gender: 'extension',
  phone: 'telecom',
  email: 'telecom',
  identifiers: 'identifier',
} as const;

/**
 * Maps a FHIR R4 Patient to a validated identity.
 * - name: the `official` name (else the first that is not `usual`) gives given/family; a
 *   `usual` name's first given name (or text) gives the preferred name.
 * - gender -> sex (`unknown` when absent); gender identity from the individual-genderIdentity
 *   extension (sub-extension `value`), or its plain R4 predecessor.
 * - the first phone and e-mail in telecom, the first address.
 * - identifiers per `IDENTIFIER_TYPE_CODES`; others are not imported.
 */
export function mapPatient(r: Obj): PatientIdentity {
  const names = r.list('name');
  const official =
    names.find((n) => n.str('use') === 'official') ?? names.find((n) => n.str('use') !== 'usual') ?? names[0];
  const usual = names.find((n) => n.str('use') === 'usual');
  const telecom = r.list('telecom');
  const address = r.list('address')[0];
  const identity = {
    name: {
      given: official?.strings('given') ?? [],
      family: official?.str('family'),
      preferred: usual === undefined ? undefined : (usual.strings('given')[0] ?? usual.str('text')),
    },
    birthDate: r.str('birthDate'),
    sex: r.str('gender') ?? 'unknown',
    gender: genderIdentity(r),
    address:
      address === undefined
        ? undefined
        : {
            lines: address.strings('line'),
            city: address.str('city'),
            postalCode: address.str('postalCode'),
            state: address.str('state'),
            country: address.str('country'),
          },
    phone: telecom.find((t) => t.str('system') === 'phone')?.str('value'),
    email: telecom.find((t) => t.str('system') === 'email')?.str('value'),
    identifiers: r.list('identifier').flatMap((i) => {
      const type = identifierType(i);
      return type === undefined ? [] : [{ type, system: i.str('system'), value: i.str('value') }];
    }),
  };
  return validated((i) => parseIdentity(i, ''), defined(identity), r.path, FIELDS);
}

function identifierType(i: Obj): 'mrn' | 'national' | 'insurance' | undefined {
  const codes = (i.obj('type')?.list('coding') ?? [])
    .filter((c) => c.str('system') === V2_IDENTIFIER_TYPE)
    .map((c) => c.str('code'));
  for (const code of codes) {
    for (const [type, known] of Object.entries(IDENTIFIER_TYPE_CODES)) {
      if ((known as readonly string[]).includes(code ?? '')) {
        return type as keyof typeof IDENTIFIER_TYPE_CODES;
      }
    }
  }
  const system = i.str('system');
  return system !== undefined && NATIONAL_ID_SYSTEMS.includes(system) ? 'national' : undefined;
}

function genderIdentity(r: Obj): string | undefined {
  for (const ext of r.list('extension')) {
    const url = ext.str('url');
    if (url === GENDER_IDENTITY_EXT || url === GENDER_IDENTITY_EXT_R4) {
      const value = ext.list('extension').find((e) => e.str('url') === 'value') ?? ext;
      const cc = value.obj('valueCodeableConcept');
      const text =
        cc?.str('text') ??
        cc
          ?.list('coding')
          .map((c) => c.str('display') ?? c.str('code'))
          .find((t) => t !== undefined);
      if (text !== undefined) {
        return text;
      }
    }
  }
  return undefined;
}
