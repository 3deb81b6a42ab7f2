/**
 * Word lists for the demo generator: names, places and the phrases synthetic notes are built from.
 * Everything here is invented or generic; no list describes a real person.
 */

export interface NameGroup {
  readonly female: readonly string[];
  readonly male: readonly string[];
  readonly family: readonly string[];
}

/** Name groups from many traditions, including diacritics and apostrophes on purpose. */
export const NAME_GROUPS: readonly NameGroup[] = [
  {
    female: ['Emma', 'Olivia', 'Sarah', 'Hannah', 'Grace', 'Emily', 'Margaret', 'Elizabeth'],
    male: ['James', 'William', 'Noah', 'Thomas', 'Daniel', 'Henry', 'Samuel', 'Robert'],
    family: ['Smith', 'Johnson', 'Williams', 'Brown', 'Taylor', 'Miller', 'Clarke', 'Walker'],
  },
  {
    female: ['Aoife', 'Siobhán', 'Niamh', 'Saoirse', 'Róisín', 'Ciara'],
    male: ['Seán', 'Pádraig', 'Ciarán', 'Eoin', 'Liam', 'Declan'],
    family: ["O'Brien", "O'Connor", "O'Neill", 'Murphy', 'Kelly', 'McCarthy', 'Byrne', 'Walsh'],
  },
  {
    female: ['Anna', 'Lena', 'Käthe', 'Mia', 'Sophie', 'Jana'],
    male: ['Jürgen', 'Lukas', 'Felix', 'Maximilian', 'Jörg', 'Matthias'],
    family: ['Müller', 'Schäfer', 'Schmidt', 'Weiß', 'Köhler', 'Becker', 'Hoffmann', 'Groß'],
  },
  {
    female: ['María', 'Lucía', 'Sofía', 'Ana', 'Valentina', 'Inés', 'Mónica'],
    male: ['José', 'Alejandro', 'Andrés', 'Jesús', 'Mateo', 'Martín'],
    family: ['García', 'Rodríguez', 'Martínez', 'Hernández', 'López', 'Núñez', 'Peña', 'Muñoz'],
  },
  {
    female: ['Lan', 'Mai', 'Thảo', 'Ngọc', 'Hương', 'Linh'],
    male: ['Minh', 'Dũng', 'Huy', 'Tuấn', 'Quang', 'Phúc'],
    family: ['Nguyễn', 'Trần', 'Lê', 'Phạm', 'Hoàng', 'Võ', 'Đặng'],
  },
  {
    female: ['Sanne', 'Femke', 'Lotte', 'Anouk', 'Eva', 'Marieke'],
    male: ['Daan', 'Sem', 'Thijs', 'Bram', 'Joost', 'Pieter'],
    family: ['de Vries', 'van den Berg', 'Jansen', 'Bakker', 'Visser', 'de Jong', 'van Dijk', "'t Hart"],
  },
  {
    female: ['Priya', 'Ananya', 'Aisha', 'Deepika', 'Kavya', 'Sunita'],
    male: ['Arjun', 'Rahul', 'Vikram', 'Rohan', 'Sanjay', 'Aditya'],
    family: ['Patel', 'Sharma', 'Singh', 'Gupta', 'Reddy', 'Iyer', 'Chatterjee'],
  },
  {
    female: ['Mei', 'Yuki', 'Ji-woo', 'Haruka', 'Seo-yeon', 'Wen'],
    male: ['Wei', 'Hiroshi', 'Min-jun', 'Jun', 'Takeshi', 'Hao'],
    family: ['Wang', 'Li', 'Chen', 'Zhang', 'Kim', 'Park', 'Tanaka', 'Satō'],
  },
  {
    female: ['Fatima', 'Layla', 'Noor', 'Yasmin', 'Mariam', 'Zeynep', 'Ayşe'],
    male: ['Omar', 'Youssef', 'Karim', 'Ahmed', 'Mehmet', 'Emre'],
    family: ['Haddad', 'Al-Sayed', 'Khalil', 'Nasser', 'Yılmaz', 'Öztürk', 'Demir'],
  },
  {
    female: ['Chiamaka', 'Adaeze', 'Ngozi', 'Amara', 'Abena', 'Folake'],
    male: ['Chinedu', 'Oluwaseun', 'Kwame', 'Emeka', 'Tunde', 'Kofi'],
    family: ['Okafor', 'Adeyemi', 'Mensah', 'Okonkwo', 'Boateng', 'Eze', 'Asante'],
  },
  {
    female: ['Ingrid', 'Astrid', 'Małgorzata', 'Zofia', 'Katarzyna', 'Sigrid'],
    male: ['Søren', 'Björn', 'Łukasz', 'Piotr', 'Mikael', 'Tomáš'],
    family: ['Lindström', 'Ødegaard', 'Nowak', 'Håkansson', 'Nielsen', 'Jørgensen', 'Dvořák'],
  },
  {
    female: ['Chloé', 'Zoë', 'Renée', 'Élise', 'Amélie', 'Giulia', 'Francesca'],
    male: ['François', 'Jérôme', 'Théo', 'Benoît', 'Étienne', 'Niccolò', 'Luca'],
    family: ['Lefèvre', 'Dubois', 'Moreau', 'Girard', 'Rossi', 'Esposito', "D'Angelo", 'Ferrari'],
  },
];

/** Familiar forms some patients prefer to be called by. */
export const PREFERRED_NAMES: Readonly<Record<string, readonly string[]>> = {
  William: ['Will', 'Bill'],
  Elizabeth: ['Liz', 'Beth'],
  Margaret: ['Maggie', 'Peggy'],
  Robert: ['Rob', 'Bobby'],
  Samuel: ['Sam'],
  Alejandro: ['Alex'],
  Maximilian: ['Max'],
  Oluwaseun: ['Seun'],
  Katarzyna: ['Kasia'],
  Małgorzata: ['Gosia'],
  Valentina: ['Vale'],
  Pádraig: ['Paddy'],
  Francesca: ['Fran'],
};

export const GENDER_IDENTITIES = [
  'non-binary',
  'transgender woman',
  'transgender man',
  'genderqueer',
  'agender',
];

export interface City {
  readonly city: string;
  readonly state?: string;
  /** ZIP prefix (US, 3 digits) or postcode prefix (NL, 2 digits). */
  readonly postal: string;
  /** Telephone area code, without trunk prefix. */
  readonly area: string;
}

export const US_CITIES: readonly City[] = [
  { city: 'Springfield', state: 'IL', postal: '627', area: '217' },
  { city: 'Portland', state: 'OR', postal: '972', area: '503' },
  { city: 'Austin', state: 'TX', postal: '787', area: '512' },
  { city: 'Columbus', state: 'OH', postal: '432', area: '614' },
  { city: 'Madison', state: 'WI', postal: '537', area: '608' },
  { city: 'Raleigh', state: 'NC', postal: '276', area: '919' },
  { city: 'Boston', state: 'MA', postal: '021', area: '617' },
  { city: 'Denver', state: 'CO', postal: '802', area: '303' },
  { city: 'Minneapolis', state: 'MN', postal: '554', area: '612' },
  { city: 'Sacramento', state: 'CA', postal: '958', area: '916' },
  { city: 'Albuquerque', state: 'NM', postal: '871', area: '505' },
  { city: 'Burlington', state: 'VT', postal: '054', area: '802' },
];

export const US_STREETS = [
  'Maple Street',
  'Oak Avenue',
  'Cedar Lane',
  'Elm Street',
  'Pine Road',
  'Washington Avenue',
  'Lakeview Drive',
  'Park Place',
  'Hillcrest Road',
  'Mill Street',
  'Church Street',
  'Riverside Drive',
];

export const US_UNITS = ['Apt 2B', 'Apt 4C', 'Unit 12', 'Suite 300', 'Apt 1A', 'Unit 7'];

export const NL_CITIES: readonly City[] = [
  { city: 'Amsterdam', postal: '10', area: '20' },
  { city: 'Rotterdam', postal: '30', area: '10' },
  { city: 'Utrecht', postal: '35', area: '30' },
  { city: 'Den Haag', postal: '25', area: '70' },
  { city: 'Eindhoven', postal: '56', area: '40' },
  { city: 'Groningen', postal: '97', area: '50' },
  { city: 'Nijmegen', postal: '65', area: '24' },
  { city: 'Haarlem', postal: '20', area: '23' },
  { city: 'Leiden', postal: '23', area: '71' },
  { city: "'s-Hertogenbosch", postal: '52', area: '73' },
];

export const NL_STREETS = [
  'Keizersgracht',
  'Hoofdstraat',
  'Kerkstraat',
  'Stationsweg',
  'Dorpsstraat',
  'Molenweg',
  'Julianalaan',
  'Beatrixstraat',
  'Lindenlaan',
  'Prinsengracht',
];

/** Letters used in Dutch postcodes (F, I, O, Q, U and Y are not). */
export const NL_POSTCODE_LETTERS = 'ABCDEGHJKLMNPRSTVWXZ';

export const EMAIL_DOMAINS = ['example.org', 'example.com', 'example.net'];

export interface Payer {
  readonly system: string;
  readonly prefix: string;
}

export const PAYERS: readonly Payer[] = [
  { system: 'https://example.org/fhir/sid/northwind-health', prefix: 'NWH' },
  { system: 'https://example.com/fhir/sid/contoso-care', prefix: 'CCR' },
  { system: 'https://example.net/fhir/sid/fabrikam-mutual', prefix: 'FBM' },
];

export const THERAPY_LOCATIONS = [
  'Custos Demo Clinic, Room 1',
  'Custos Demo Clinic, Room 2',
  'Custos Demo Clinic, Room 3',
];
export const VISIT_LOCATIONS = ['Custos Demo Clinic, Exam Room A', 'Custos Demo Clinic, Exam Room B'];
export const VIRTUAL_LOCATION = 'Video consultation';

/*
 * Note phrases. `{Client}` / `{client}` become "Client" or "Patient"; `{condition}` becomes the
 * display text of one of the patient's conditions (lower-cased where it is mid-sentence).
 */

export const THERAPY_OPENERS = [
  '{Client} reports a mixed week with some good days and some difficult ones.',
  '{Client} describes sleep as somewhat improved since the last session.',
  '{Client} reports increased stress at work over the past two weeks.',
];

export const THERAPY_OPENERS_IN_PERSON = [
  '{Client} attended the session on time and engaged well throughout.',
  '{Client} arrived a few minutes late but settled quickly.',
];

export const THERAPY_OPENERS_VIRTUAL = [
  '{Client} joined the video session from home; the connection was stable.',
  '{Client} joined by video from a private room at work.',
];

export const THERAPY_CONTENT = [
  'We reviewed the thought record from last week and identified two recurring cognitive distortions.',
  'The session focused on behavioural activation; {client} scheduled three pleasant activities.',
  'We practised paced breathing and grounding techniques, which {client} found helpful.',
  'We discussed triggers for recent worry episodes and rehearsed a problem-solving approach.',
  'We reviewed progress towards the treatment goals for {condition}.',
  'We worked on a graded exposure hierarchy and agreed on the first two steps.',
  'We explored sleep hygiene and agreed on a consistent wake-up time.',
];

export const THERAPY_ASSESSMENT = [
  'Mood appears somewhat brighter; affect is congruent.',
  'No current suicidal ideation reported; the safety plan was reviewed and remains in place.',
  'Anxiety symptoms are reported as moderate, down from last month.',
  'Engagement is good and homework completion is consistent.',
  'Progress is slower than hoped; motivation fluctuates.',
];

export const THERAPY_PLAN = [
  'Continue weekly sessions.',
  'Repeat the PHQ-9 and GAD-7 at the next session.',
  'Homework: a daily mood log and one exposure exercise.',
  'Next session in two weeks.',
  'Review the treatment plan after four more sessions.',
];

export const PSYCHOTHERAPY_PHRASES = [
  'Process notes: explored ambivalence about change and what staying the same protects against.',
  'Strong affect noted when family of origin was discussed; this was slowed down and contained.',
  'Working hypothesis: avoidance protects against feared rejection in close relationships.',
  'Transference: {client} voiced frustration with the pace of therapy; this was named and explored.',
  'Countertransference noted (a pull to reassure); to be taken to supervision.',
  'Dream material brought today echoes themes of loss discussed in earlier sessions.',
  'Therapist impression: early attachment themes appear to shape current conflicts at work.',
];

export const VISIT_OPENERS = [
  '{Client} presents for follow-up of {condition}.',
  '{Client} is seen for a routine review.',
  '{Client} reports no new complaints since the last visit.',
  '{Client} reports intermittent symptoms over the past month.',
  '{Client} attends for a medication review.',
];

export const VISIT_FINDINGS = [
  'Vital signs reviewed and recorded.',
  'Examination unremarkable apart from the findings recorded separately.',
  'Medication adherence reported as good; no side effects.',
  'Reports mild side effects that are tolerable.',
  'Weight is stable compared with the previous visit.',
];

export const VISIT_ASSESSMENT = [
  '{Condition} appears stable on the current regimen.',
  '{Condition} is not yet at target; lifestyle measures were discussed.',
  'Overall improving; no red-flag symptoms.',
  'Symptoms are partly controlled; shared decision to adjust the plan.',
];

export const VISIT_PLAN = [
  'Continue the current medication.',
  'Repeat laboratory tests in three months.',
  'Follow up in six weeks, or sooner if symptoms worsen.',
  'Lifestyle advice given regarding diet, exercise and sleep.',
  'Referral letter to be sent; patient information leaflet provided.',
];

export const RESTRICTED_PHRASES = [
  '{Client} asked that this discussion not be shared with family members.',
  'Discussed alcohol and substance use in confidence; details recorded here at the request of {client}.',
  'Sensitive social circumstances discussed; access to this note is restricted.',
  'Disclosed a difficult relationship situation; safety resources were offered.',
];

export const THERAPY_NOTE_TITLES = ['Session note', 'Progress note', 'Therapy session summary'];
export const VISIT_NOTE_TITLES = ['Progress note', 'Follow-up note', 'Visit summary'];
export const PSYCHOTHERAPY_NOTE_TITLE = 'Psychotherapy process note';
export const RESTRICTED_NOTE_TITLE = 'Confidential note';

export type GoalTheme = 'mood' | 'anxiety' | 'trauma' | 'attention' | 'substance' | 'sleep';

/** Therapy-plan goals by theme. */
export const THERAPY_GOALS: Readonly<Record<GoalTheme, readonly string[]>> = {
  mood: [
    'Reduce PHQ-9 score below 10 within 12 weeks',
    'Resume at least three valued activities per week',
    'Identify and challenge negative automatic thoughts using thought records',
    'Establish a regular sleep and wake routine',
  ],
  anxiety: [
    'Reduce GAD-7 score below 10 within 12 weeks',
    'Use paced breathing to manage acute anxiety without leaving the situation',
    'Complete graded exposure steps up to the top of the hierarchy',
    'Reduce time spent worrying to under 30 minutes a day',
  ],
  trauma: [
    'Develop grounding skills for managing intrusive memories',
    'Complete a trauma narrative with tolerable distress',
    'Reduce nightmares to fewer than one per week',
    'Re-engage with avoided places and people in a planned way',
  ],
  attention: [
    'Use a daily planner for school or work tasks',
    'Break larger tasks into steps with time estimates',
    'Agree on routines with family or partner to reduce conflict',
  ],
  substance: [
    'Maintain abstinence from alcohol, with weekly check-ins',
    'Identify high-risk situations and rehearse coping responses',
    'Build a sober support network',
  ],
  sleep: [
    'Keep a consistent wake-up time seven days a week',
    'Reduce sleep-onset latency to under 30 minutes',
    'Complete a two-week sleep diary',
  ],
};
