import { describe, expect, it } from 'vitest';
import { DISCLOSURE_READS } from '../chart/disclosures.service.ts';
import { afterChange, configHash, integrationStatus, mayDeliver, needsApproval } from './approval.ts';
import { DEFAULT_FIELDS, EVENT_FIELDS } from './config.ts';

const base = {
  url: 'https://hooks.example.com/custos',
  fields: ['start', 'end', 'patientName'],
  events: ['booked', 'cancelled'],
  purpose: 'Synthetic reminders',
};

describe('the two-person rule for integrations', () => {
  it('asks approval for every field read through the gate, and for none taken from the event', () => {
    for (const f of DISCLOSURE_READS) {
      expect(needsApproval(['start', f]), f).toBe(true);
    }
    expect(needsApproval(DEFAULT_FIELDS)).toBe(false);
    expect(needsApproval(EVENT_FIELDS)).toBe(false);
  });

  it('binds an approval to the URL, the fields, the events and the purpose, not to their order', () => {
    const h = configHash(base);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(configHash({ ...base, fields: ['patientName', 'end', 'start', 'start'] })).toBe(h);
    expect(configHash({ ...base, events: ['cancelled', 'booked'] })).toBe(h);
    for (const changed of [
      { url: 'https://hooks.example.com/other' },
      { url: 'https://attacker.example.com/custos' },
      { fields: ['start', 'end', 'patientName', 'patientEmail'] },
      { fields: ['start', 'patientName'] },
      { events: ['booked', 'cancelled', 'no-show'] },
      { purpose: 'Something else' },
    ]) {
      expect(configHash({ ...base, ...changed }), JSON.stringify(changed)).not.toBe(h);
    }
  });

  it('sends the approval back to pending when what it covers changes, and keeps it otherwise', () => {
    const h = configHash(base);
    const moved = configHash({ ...base, url: 'https://attacker.example.com/x' });
    const approved = { state: 'approved', hash: h, approvedHash: h } as const;
    expect(afterChange(approved, { fields: base.fields, hash: h })).toBe('keep');
    expect(afterChange(approved, { fields: base.fields, hash: moved })).toBe('submit');
    expect(afterChange(approved, { fields: ['start', 'end'], hash: 'x' })).toBe('not-required');
    const pending = { state: 'pending-approval', hash: h, approvedHash: null } as const;
    expect(afterChange(pending, { fields: base.fields, hash: h })).toBe('keep');
    expect(afterChange(pending, { fields: base.fields, hash: moved })).toBe('submit');
    const rejected = { state: 'rejected', hash: h, approvedHash: null } as const;
    expect(afterChange(rejected, { fields: base.fields, hash: h })).toBe('keep');
    expect(afterChange(rejected, { fields: base.fields, hash: moved })).toBe('submit');
    const plain = { state: 'not-required', hash: 'a', approvedHash: null } as const;
    expect(afterChange(plain, { fields: ['start', 'room'], hash: 'b' })).toBe('keep');
    expect(afterChange(plain, { fields: ['start', 'patientPhone'], hash: 'b' })).toBe('submit');
    // Back to an approved configuration from a pending one is still a new request.
    expect(
      afterChange(
        { state: 'pending-approval', hash: moved, approvedHash: null },
        { fields: base.fields, hash: h },
      ),
    ).toBe('submit');
  });

  it('delivers only what needs no approval, or exactly the configuration approved', () => {
    const h = configHash(base);
    expect(mayDeliver({ ...base, approval: 'approved', approved_config_hash: h })).toBe(true);
    expect(
      mayDeliver({ ...base, url: 'https://x.example.com/', approval: 'approved', approved_config_hash: h }),
    ).toBe(false);
    expect(mayDeliver({ ...base, approval: 'pending-approval', approved_config_hash: null })).toBe(false);
    expect(mayDeliver({ ...base, approval: 'rejected', approved_config_hash: null })).toBe(false);
    // A row that claims no approval is needed while it reads through the gate is not trusted.
    expect(mayDeliver({ ...base, approval: 'not-required', approved_config_hash: null })).toBe(false);
    expect(
      mayDeliver({ ...base, fields: ['start', 'end'], approval: 'not-required', approved_config_hash: null }),
    ).toBe(true);
  });

  it('shows the switch and the approval as one status', () => {
    expect(integrationStatus({ active: true, approval: 'not-required' })).toBe('active');
    expect(integrationStatus({ active: true, approval: 'approved' })).toBe('active');
    expect(integrationStatus({ active: true, approval: 'pending-approval' })).toBe('pending-approval');
    expect(integrationStatus({ active: true, approval: 'rejected' })).toBe('rejected');
    expect(integrationStatus({ active: false, approval: 'approved' })).toBe('inactive');
  });
});
