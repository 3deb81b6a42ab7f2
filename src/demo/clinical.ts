/**
 * Clinical catalogues for the demo generator: which conditions a clinic or therapy practice sees,
 * what is measured for them and how they are treated. Codes are real code-system codes; the data
 * they end up in is synthetic.
 */

import type { GoalTheme } from './vocabulary.ts';

export const LOINC = 'http://loinc.org';
export const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
export const SNOMED = 'http://snomed.info/sct';
export const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
export const UCUM = 'http://unitsofmeasure.org';

export type ObservationKey =
  | 'weight'
  | 'height'
  | 'systolic'
  | 'diastolic'
  | 'heartRate'
  | 'hba1c'
  | 'glucose'
  | 'cholesterol'
  | 'phq9'
  | 'gad7'
  | 'pain'
  | 'smoking';

export interface ObservationDef {
  readonly code: string;
  readonly display: string;
  /** UCUM unit; absent for observations with a text value. */
  readonly unit?: string;
  readonly decimals: number;
  /** Typical value range for someone without the related condition. */
  readonly normal: readonly [number, number];
  /** Value range when the patient has a condition this observation tracks. */
  readonly affected?: readonly [number, number];
  readonly referenceRange?: { low?: number; high?: number; unit?: string; text?: string };
}

export const OBSERVATIONS: Readonly<Record<ObservationKey, ObservationDef>> = {
  weight: { code: '29463-7', display: 'Body weight', unit: 'kg', decimals: 1, normal: [0, 0] },
  height: { code: '8302-2', display: 'Body height', unit: 'cm', decimals: 0, normal: [0, 0] },
  systolic: {
    code: '8480-6',
    display: 'Systolic blood pressure',
    unit: 'mm[Hg]',
    decimals: 0,
    normal: [104, 128],
    affected: [134, 168],
    referenceRange: { low: 90, high: 120, unit: 'mm[Hg]' },
  },
  diastolic: {
    code: '8462-4',
    display: 'Diastolic blood pressure',
    unit: 'mm[Hg]',
    decimals: 0,
    normal: [62, 82],
    affected: [86, 102],
    referenceRange: { low: 60, high: 80, unit: 'mm[Hg]' },
  },
  heartRate: {
    code: '8867-4',
    display: 'Heart rate',
    unit: '/min',
    decimals: 0,
    normal: [58, 92],
    affected: [72, 108],
    referenceRange: { low: 60, high: 100, unit: '/min' },
  },
  hba1c: {
    code: '4548-4',
    display: 'Hemoglobin A1c/Hemoglobin.total in Blood',
    unit: '%',
    decimals: 1,
    normal: [4.6, 5.6],
    affected: [6.4, 9.6],
    referenceRange: { high: 5.7, unit: '%', text: 'Normal below 5.7 %; diabetes 6.5 % or higher' },
  },
  glucose: {
    code: '2339-0',
    display: 'Glucose [Mass/volume] in Blood',
    unit: 'mg/dL',
    decimals: 0,
    normal: [72, 105],
    affected: [120, 220],
    referenceRange: { low: 70, high: 110, unit: 'mg/dL' },
  },
  cholesterol: {
    code: '2093-3',
    display: 'Cholesterol [Mass/volume] in Serum or Plasma',
    unit: 'mg/dL',
    decimals: 0,
    normal: [140, 199],
    affected: [205, 280],
    referenceRange: { high: 200, unit: 'mg/dL' },
  },
  phq9: {
    code: '44261-6',
    display: 'Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]',
    unit: '{score}',
    decimals: 0,
    normal: [0, 6],
    affected: [10, 24],
    referenceRange: {
      low: 0,
      high: 4,
      text: '0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe',
    },
  },
  gad7: {
    code: '70274-6',
    display: 'Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]',
    unit: '{score}',
    decimals: 0,
    normal: [0, 5],
    affected: [10, 19],
    referenceRange: { low: 0, high: 4, text: '0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe' },
  },
  pain: {
    code: '72514-3',
    display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported',
    unit: '{score}',
    decimals: 0,
    normal: [0, 2],
    affected: [4, 8],
    referenceRange: { low: 0, high: 10, text: '0 no pain, 10 worst imaginable pain' },
  },
  smoking: { code: '72166-2', display: 'Tobacco smoking status', decimals: 0, normal: [0, 0] },
};

export const SMOKING_STATUSES = ['Never smoker', 'Former smoker', 'Current some day smoker', 'Never smoker'];

export interface MedicationDef {
  readonly code: string;
  readonly display: string;
  readonly dosage: string;
  readonly route: string;
  readonly dose?: { value: number; unit: string; code: string };
}

export const MEDICATIONS = {
  sertraline: med('36437', 'sertraline', '50 mg by mouth once daily', 'oral', 50, 'mg'),
  escitalopram: med('321988', 'escitalopram', '10 mg by mouth once daily', 'oral', 10, 'mg'),
  fluoxetine: med('4493', 'fluoxetine', '20 mg by mouth every morning', 'oral', 20, 'mg'),
  bupropion: med('42347', 'bupropion', '150 mg extended-release by mouth every morning', 'oral', 150, 'mg'),
  buspirone: med('1827', 'buspirone', '10 mg by mouth twice daily', 'oral', 10, 'mg'),
  prazosin: med('8629', 'prazosin', '1 mg by mouth at bedtime', 'oral', 1, 'mg'),
  methylphenidate: med('6901', 'methylphenidate', '10 mg by mouth every morning', 'oral', 10, 'mg'),
  metformin: med('6809', 'metformin', '500 mg by mouth twice daily with meals', 'oral', 500, 'mg'),
  lisinopril: med('29046', 'lisinopril', '10 mg by mouth once daily', 'oral', 10, 'mg'),
  amlodipine: med('17767', 'amlodipine', '5 mg by mouth once daily', 'oral', 5, 'mg'),
  atorvastatin: med('83367', 'atorvastatin', '20 mg by mouth at night', 'oral', 20, 'mg'),
  albuterol: med(
    '435',
    'albuterol',
    '2 puffs inhaled every 4 to 6 hours as needed',
    'inhalation',
    2,
    '{puff}',
  ),
  fluticasone: med(
    '41126',
    'fluticasone',
    '2 puffs (110 mcg each) inhaled twice daily',
    'inhalation',
    2,
    '{puff}',
  ),
  ibuprofen: med('5640', 'ibuprofen', '400 mg by mouth every 8 hours as needed with food', 'oral', 400, 'mg'),
  naproxen: med('7258', 'naproxen', '500 mg by mouth twice daily for up to 14 days', 'oral', 500, 'mg'),
  cyclobenzaprine: med('21949', 'cyclobenzaprine', '5 mg by mouth at bedtime as needed', 'oral', 5, 'mg'),
  levothyroxine: med(
    '10582',
    'levothyroxine',
    '50 mcg by mouth every morning before breakfast',
    'oral',
    50,
    'ug',
  ),
  omeprazole: med('7646', 'omeprazole', '20 mg by mouth once daily before breakfast', 'oral', 20, 'mg'),
  sumatriptan: med(
    '37418',
    'sumatriptan',
    '50 mg by mouth at migraine onset; may repeat once',
    'oral',
    50,
    'mg',
  ),
  hydrocortisone: {
    code: '5492',
    display: 'hydrocortisone',
    dosage: '1% cream applied thinly to affected skin twice daily',
    route: 'topical',
  },
} as const satisfies Record<string, MedicationDef>;

export type MedicationKey = keyof typeof MEDICATIONS;

function med(code: string, display: string, dosage: string, route: string, value: number, unit: string) {
  return { code, display, dosage, route, dose: { value, unit: unit.replace(/[{}]/g, ''), code: unit } };
}

export const PROCEDURES = {
  cbt: { code: '304891004', display: 'Cognitive behavioral therapy' },
  psychotherapy: { code: '75516001', display: 'Psychotherapy' },
  depressionScreening: { code: '171207006', display: 'Depression screening' },
  suicideRisk: { code: '225337009', display: 'Suicide risk assessment' },
  psychiatricEvaluation: { code: '90407005', display: 'Evaluation of psychiatric state of patient' },
  physiotherapy: { code: '91251008', display: 'Physical therapy procedure' },
  exerciseTherapy: { code: '229065009', display: 'Exercise therapy' },
  dietEducation: { code: '11816003', display: 'Diet education' },
  spirometry: { code: '127783003', display: 'Spirometry' },
  hba1cTest: { code: '43396009', display: 'Hemoglobin A1c measurement' },
  bloodPressure: { code: '46973005', display: 'Blood pressure taking' },
} as const satisfies Record<string, { code: string; display: string }>;

export type ProcedureKey = keyof typeof PROCEDURES;

export interface ConditionDef {
  readonly code: string;
  readonly display: string;
  readonly mental: boolean;
  readonly minAge: number;
  readonly maxAge?: number;
  readonly observations: readonly ObservationKey[];
  readonly medications: readonly MedicationKey[];
  readonly procedures: readonly ProcedureKey[];
  readonly goals?: GoalTheme;
  /** Records about it are kept restricted (e.g. substance use, 42 CFR Part 2). */
  readonly restricted?: boolean;
}

const c = (
  code: string,
  display: string,
  minAge: number,
  observations: ObservationKey[],
  medications: MedicationKey[],
  procedures: ProcedureKey[],
  extra: Partial<ConditionDef> = {},
): ConditionDef => ({
  code,
  display,
  mental: code.startsWith('F'),
  minAge,
  observations,
  medications,
  procedures,
  ...extra,
});

export const MENTAL_CONDITIONS: readonly ConditionDef[] = [
  c(
    'F32.1',
    'Major depressive disorder, single episode, moderate',
    12,
    ['phq9'],
    ['sertraline', 'escitalopram', 'fluoxetine', 'bupropion'],
    ['cbt', 'depressionScreening', 'suicideRisk'],
    { goals: 'mood' },
  ),
  c(
    'F33.1',
    'Major depressive disorder, recurrent, moderate',
    16,
    ['phq9'],
    ['sertraline', 'bupropion', 'escitalopram'],
    ['psychotherapy', 'suicideRisk'],
    { goals: 'mood' },
  ),
  c(
    'F41.1',
    'Generalized anxiety disorder',
    10,
    ['gad7', 'heartRate'],
    ['escitalopram', 'buspirone', 'sertraline'],
    ['cbt', 'psychiatricEvaluation'],
    { goals: 'anxiety' },
  ),
  c(
    'F41.0',
    'Panic disorder [episodic paroxysmal anxiety]',
    14,
    ['gad7', 'heartRate'],
    ['sertraline', 'escitalopram'],
    ['cbt'],
    { goals: 'anxiety' },
  ),
  c('F40.10', 'Social phobia, unspecified', 12, ['gad7'], ['sertraline'], ['cbt'], { goals: 'anxiety' }),
  c(
    'F43.10',
    'Post-traumatic stress disorder, unspecified',
    6,
    ['phq9', 'gad7'],
    ['sertraline', 'prazosin'],
    ['psychotherapy', 'psychiatricEvaluation'],
    { goals: 'trauma' },
  ),
  c(
    'F43.23',
    'Adjustment disorder with mixed anxiety and depressed mood',
    8,
    ['phq9', 'gad7'],
    [],
    ['psychotherapy'],
    { goals: 'mood' },
  ),
  c(
    'F90.0',
    'Attention-deficit hyperactivity disorder, predominantly inattentive type',
    6,
    ['heartRate', 'weight'],
    ['methylphenidate'],
    ['psychiatricEvaluation'],
    { goals: 'attention' },
  ),
  c('F10.20', 'Alcohol dependence, uncomplicated', 18, ['phq9'], [], ['psychotherapy'], {
    goals: 'substance',
    restricted: true,
  }),
  c('G47.00', 'Insomnia, unspecified', 12, ['phq9'], [], ['cbt'], { goals: 'sleep', mental: true }),
];

export const MEDICAL_CONDITIONS: readonly ConditionDef[] = [
  c(
    'E11.9',
    'Type 2 diabetes mellitus without complications',
    30,
    ['hba1c', 'glucose', 'weight'],
    ['metformin'],
    ['dietEducation', 'hba1cTest'],
  ),
  c(
    'I10',
    'Essential (primary) hypertension',
    25,
    ['systolic', 'diastolic', 'heartRate'],
    ['lisinopril', 'amlodipine'],
    ['bloodPressure'],
  ),
  c(
    'J45.909',
    'Unspecified asthma, uncomplicated',
    3,
    ['heartRate'],
    ['albuterol', 'fluticasone'],
    ['spirometry'],
  ),
  c(
    'M54.5',
    'Low back pain',
    18,
    ['pain'],
    ['ibuprofen', 'naproxen', 'cyclobenzaprine'],
    ['physiotherapy', 'exerciseTherapy'],
  ),
  c('E78.5', 'Hyperlipidemia, unspecified', 30, ['cholesterol'], ['atorvastatin'], ['dietEducation']),
  c('E66.9', 'Obesity, unspecified', 10, ['weight', 'height'], [], ['dietEducation', 'exerciseTherapy']),
  c(
    'K21.9',
    'Gastro-esophageal reflux disease without esophagitis',
    18,
    ['weight'],
    ['omeprazole'],
    ['dietEducation'],
  ),
  c(
    'G43.909',
    'Migraine, unspecified, not intractable, without status migrainosus',
    12,
    ['pain'],
    ['sumatriptan', 'ibuprofen'],
    [],
  ),
  c('E03.9', 'Hypothyroidism, unspecified', 20, ['weight', 'heartRate'], ['levothyroxine'], []),
  c('L20.9', 'Atopic dermatitis, unspecified', 0, [], ['hydrocortisone'], [], { maxAge: 40 }),
  c('H66.90', 'Otitis media, unspecified, unspecified ear', 0, ['pain'], ['ibuprofen'], [], { maxAge: 12 }),
];
