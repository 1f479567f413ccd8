import { ineligibilityReason, subscriptionPlan, taskRootsFor } from '../../../../agents/runtime/eligibility';
import { Resume, TaskRequest } from '../../../../core/schemas';

const seed = Resume.parse({ skills: ['sql-optimiser', 'nl2chart'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: ['ISO27001', 'gdpr'] });
const plain = Resume.parse({ skills: ['nl2chart'], cost: { usd: 0.01, p95_ms: 100 }, region: 'eu-central-1' });

function request(constraints: object) {
  return TaskRequest.parse({ goal: 'g', want: ['x'], constraints });
}

describe('taskRootsFor', () => {
  describe('an agent without gdpr', () => {
    it('listens on tasks only', () => {
      expect(taskRootsFor(plain)).toEqual(['tasks']);
    });
  });

  describe('an agent claiming gdpr', () => {
    it('also listens on patient-data when it lists no data classes', () => {
      expect(taskRootsFor(seed)).toEqual(['tasks', 'patient-data']);
    });

    it('skips patient-data when its data classes exclude phi', () => {
      expect(taskRootsFor({ ...seed, dataClasses: ['pii'] })).toEqual(['tasks']);
    });

    it('listens on patient-data when its data classes include phi', () => {
      expect(taskRootsFor({ ...seed, dataClasses: ['phi'] })).toEqual(['tasks', 'patient-data']);
    });
  });
});

describe('subscriptionPlan', () => {
  describe('an accredited agent with a pool', () => {
    it('subscribes to requests, its assignments and its pool per root, plus its errors topic', () => {
      const plan = subscriptionPlan('agent-1', { ...seed, pools: ['charts'] });
      expect(plan.map((p) => [p.filter, p.required])).toEqual([
        ['tasks/+/request', true],
        ['tasks/+/assign/agent-1', true],
        ['$share/charts/tasks/+/pool/charts', false],
        ['patient-data/+/request', false],
        ['patient-data/+/assign/agent-1', false],
        ['$share/charts/patient-data/+/pool/charts', false],
        ['agents/agent-1/errors', true],
      ]);
    });
  });

  describe('an id that cannot be a topic level', () => {
    it('throws InvalidIdError', () => {
      expect(() => subscriptionPlan('a/b', plain)).toThrow(/contains '\/'/);
    });
  });
});

describe('ineligibilityReason', () => {
  describe('a request without constraints', () => {
    it('lets the agent bid', () => {
      expect(ineligibilityReason(plain, request({}))).toBeUndefined();
    });
  });

  describe('a region constraint', () => {
    it('rules the agent out when its region is not allowed', () => {
      expect(ineligibilityReason(plain, request({ region: ['us-east-1', 'us-west-2'] }))).toBe('region eu-central-1 is not among the allowed regions us-east-1, us-west-2');
    });

    it('accepts a single allowed region equal to the agent\'s', () => {
      expect(ineligibilityReason(plain, request({ region: 'eu-central-1' }))).toBeUndefined();
    });
  });

  describe('accreditation', () => {
    it('rules the agent out when phi data needs gdpr it does not claim', () => {
      expect(ineligibilityReason(plain, request({ dataClasses: ['phi'] }))).toBe('missing accreditation gdpr');
    });

    it('rules the agent out for an explicit accreditation it lacks', () => {
      expect(ineligibilityReason(seed, request({ accredit: ['SOC2'] }))).toBe('missing accreditation SOC2');
    });

    it('lets an accredited agent bid on phi', () => {
      expect(ineligibilityReason(seed, request({ dataClasses: ['phi'], accredit: ['ISO27001'] }))).toBeUndefined();
    });
  });

  describe('data classes the agent does not handle', () => {
    it('rules the agent out when it lists data classes without the requested one', () => {
      expect(ineligibilityReason({ ...seed, dataClasses: ['pii'] }, request({ dataClasses: ['phi'] }))).toBe('does not handle data class phi');
    });
  });
});
