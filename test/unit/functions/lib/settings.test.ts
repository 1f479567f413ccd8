import { ConfigError } from '../../../../core/errors';
import { DEFAULT_ORCHESTRATOR_CONFIG } from '../../../../core/orchestrator';
import { loadSettings } from '../../../../functions/lib/settings';
import { setTestEnv, TEST_ENV } from '../helpers/handler-env';

describe('loadSettings', () => {
  describe('a complete environment', () => {
    it('reads every variable, with orchestrator defaults for those unset', () => {
      const settings = loadSettings('intake', { ...TEST_ENV, LEASE_MS: '5000', ACCREDITATION_FILE: '/tmp/a.json', DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000' });
      expect(settings).toEqual({
        functionName: 'intake',
        tableName: TEST_ENV.TABLE_NAME,
        timerQueueUrl: TEST_ENV.TIMER_QUEUE_URL,
        iotDataEndpoint: TEST_ENV.IOT_DATA_ENDPOINT,
        dynamodbEndpoint: 'http://127.0.0.1:8000',
        accreditationFile: '/tmp/a.json',
        region: 'eu-central-1',
        fencingKey: { file: TEST_ENV.FENCING_KEY_FILE },
        orchestrator: { ...DEFAULT_ORCHESTRATOR_CONFIG, minProposalWindowMs: 0, leaseMs: 5000 },
      });
    });
  });

  describe('the fencing key', () => {
    const { FENCING_KEY_FILE: _file, ...withoutKey } = TEST_ENV;
    const arn = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:porchlight-fencing-AbCdEf';

    it('comes from a Secrets Manager secret on AWS or a file locally', () => {
      expect(loadSettings('progress', { ...withoutKey, FENCING_KEY_SECRET_ARN: arn }).fencingKey).toEqual({ secretArn: arn });
      expect(loadSettings('progress', { ...withoutKey, FENCING_KEY_FILE: '/state/fencing.key' }).fencingKey).toEqual({ file: '/state/fencing.key' });
    });

    it('is required, from exactly one place', () => {
      expect(() => loadSettings('progress', withoutKey)).toThrow(/FENCING_KEY_SECRET_ARN \(AWS\) or FENCING_KEY_FILE \(local stack\)/);
      expect(() => loadSettings('progress', { ...withoutKey, FENCING_KEY_SECRET_ARN: arn, FENCING_KEY_FILE: '/k' })).toThrow(/not both/);
    });
  });

  describe('the proposal window and waiting for bids', () => {
    it('reads MIN_PROPOSAL_WINDOW_MS, MAX_WAIT_FOR_BIDS_MS and BID_RECHECK_MS', () => {
      const settings = loadSettings('planner', { ...TEST_ENV, MIN_PROPOSAL_WINDOW_MS: '300', MAX_WAIT_FOR_BIDS_MS: '0', BID_RECHECK_MS: '500' });
      expect(settings.orchestrator).toMatchObject({ minProposalWindowMs: 300, maxWaitForBidsMs: 0, bidRecheckMs: 500 });
    });

    it('defaults to the orchestrator defaults', () => {
      const { MIN_PROPOSAL_WINDOW_MS: _unset, ...env } = TEST_ENV;
      expect(loadSettings('planner', env).orchestrator).toMatchObject({
        minProposalWindowMs: DEFAULT_ORCHESTRATOR_CONFIG.minProposalWindowMs,
        maxWaitForBidsMs: DEFAULT_ORCHESTRATOR_CONFIG.maxWaitForBidsMs,
        bidRecheckMs: DEFAULT_ORCHESTRATOR_CONFIG.bidRecheckMs,
      });
    });
  });

  describe('waiting for agents', () => {
    it('reads MAX_WAIT_FOR_AGENT_MS and DISPATCH_RETRY_MS, 0 turning waiting off', () => {
      const settings = loadSettings('timer', { ...TEST_ENV, MAX_WAIT_FOR_AGENT_MS: '0', DISPATCH_RETRY_MS: '250' });
      expect(settings.orchestrator).toMatchObject({ maxWaitForAgentMs: 0, dispatchRetryMs: 250 });
    });

    it('defaults to the orchestrator defaults', () => {
      expect(loadSettings('timer', TEST_ENV).orchestrator).toMatchObject({
        maxWaitForAgentMs: DEFAULT_ORCHESTRATOR_CONFIG.maxWaitForAgentMs, dispatchRetryMs: DEFAULT_ORCHESTRATOR_CONFIG.dispatchRetryMs,
      });
    });
  });

  describe('a missing or bad variable', () => {
    it.each([
      ['TABLE_NAME', { TABLE_NAME: '' }],
      ['TIMER_QUEUE_URL', { TIMER_QUEUE_URL: '' }],
      ['TIMER_QUEUE_URL', { TIMER_QUEUE_URL: 'porchlight-timers' }],
      ['IOT_DATA_ENDPOINT', { IOT_DATA_ENDPOINT: 'a1b2-ats.iot.eu-central-1.amazonaws.com' }],
      ['SQS_ENDPOINT', { SQS_ENDPOINT: 'localhost:9324' }],
      ['MAX_ATTEMPTS', { MAX_ATTEMPTS: 'three' }],
      ['PROPOSAL_WINDOW_MS', { PROPOSAL_WINDOW_MS: '10' }],
      ['RETENTION_MS', { RETENTION_MS: '-1' }],
      ['DEFAULT_DEADLINE_MS', { DEFAULT_DEADLINE_MS: '1e9' }],
      ['MAX_WAIT_FOR_AGENT_MS', { MAX_WAIT_FOR_AGENT_MS: '-5' }],
      ['DISPATCH_RETRY_MS', { DISPATCH_RETRY_MS: '0' }],
      ['MIN_PROPOSAL_WINDOW_MS', { MIN_PROPOSAL_WINDOW_MS: '-1' }],
      ['MAX_WAIT_FOR_BIDS_MS', { MAX_WAIT_FOR_BIDS_MS: 'soon' }],
      ['BID_RECHECK_MS', { BID_RECHECK_MS: '10' }],
    ])('throws ConfigError naming %s', (name, override) => {
      const run = () => loadSettings('planner', { ...TEST_ENV, ...override });
      expect(run).toThrow(ConfigError);
      expect(run).toThrow(new RegExp(`\\b${name}\\b`));
    });
  });

  describe('a handler module loaded without its configuration', () => {
    const saved = { ...process.env };
    afterEach(() => {
      process.env = { ...saved };
    });

    it.each(['intake', 'planner', 'progress', 'registry', 'presence', 'timer', 'sweeper'])('%s fails at load with ConfigError naming TIMER_QUEUE_URL', (fn) => {
      setTestEnv();
      delete process.env.TIMER_QUEUE_URL;
      jest.isolateModules(() => {
        expect(() => jest.requireActual(`../../../../functions/${fn}/handler`)).toThrow('environment variable TIMER_QUEUE_URL is required but not set');
      });
    });
  });
});
