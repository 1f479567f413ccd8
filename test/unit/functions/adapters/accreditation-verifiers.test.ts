import 'aws-sdk-client-mock-jest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoTClient, ListThingGroupsForThingCommand, ResourceNotFoundException, ThrottlingException } from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { ConfigError } from '../../../../core/errors';
import { FileAccreditationVerifier, IotAccreditationVerifier } from '../../../../functions/adapters/accreditation-verifiers';
import { AccreditationLookupError } from '../../../../functions/adapters/errors';

const iot = mockClient(IoTClient);
const client = new IoTClient({ region: 'eu-central-1' });

beforeEach(() => iot.reset());

describe('IotAccreditationVerifier', () => {
  describe('an agent in accreditation groups', () => {
    it('maps accredit-<label> groups to labels across pages and ignores other groups', async () => {
      iot.on(ListThingGroupsForThingCommand)
        .resolvesOnce({ thingGroups: [{ groupName: 'accredit-gdpr' }, { groupName: 'fleet-eu' }], nextToken: 'p2' })
        .resolvesOnce({ thingGroups: [{ groupName: 'accredit-ISO27001' }, { groupName: 'accredit-' }] });
      await expect(new IotAccreditationVerifier(client).accreditationsOf('agent-a')).resolves.toEqual(['ISO27001', 'gdpr']);
      expect(iot).toHaveReceivedNthCommandWith(1, ListThingGroupsForThingCommand, { thingName: 'agent-a', maxResults: 250 });
      expect(iot).toHaveReceivedNthCommandWith(2, ListThingGroupsForThingCommand, { thingName: 'agent-a', nextToken: 'p2' });
    });
  });

  describe('an identity with no thing', () => {
    it('holds no accreditations', async () => {
      iot.on(ListThingGroupsForThingCommand).rejects(new ResourceNotFoundException({ message: 'no thing', $metadata: {} }));
      await expect(new IotAccreditationVerifier(client).accreditationsOf('ghost')).resolves.toEqual([]);
    });
  });

  describe('a throttled lookup', () => {
    it('throws a retryable AccreditationLookupError keeping the cause', async () => {
      const failure = new ThrottlingException({ message: 'slow', $metadata: {} });
      iot.on(ListThingGroupsForThingCommand).rejects(failure);
      const err = await new IotAccreditationVerifier(client).accreditationsOf('agent-a').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AccreditationLookupError);
      expect(err).toMatchObject({ identity: 'agent-a', retryable: true });
      expect((err as Error).cause).toBe(failure);
    });
  });
});

describe('FileAccreditationVerifier', () => {
  const dir = mkdtempSync(join(tmpdir(), 'porchlight-accredit-'));

  describe('a valid file', () => {
    it('returns the identity entry, deduplicated, and nothing for an identity not listed', async () => {
      const path = join(dir, 'ok.json');
      writeFileSync(path, JSON.stringify({ 'agent-a': ['gdpr', 'gdpr', 'ISO27001'] }));
      const verifier = new FileAccreditationVerifier(path);
      await expect(verifier.accreditationsOf('agent-a')).resolves.toEqual(['ISO27001', 'gdpr']);
      await expect(verifier.accreditationsOf('agent-b')).resolves.toEqual([]);
    });

    it('sees changes made while running', async () => {
      const path = join(dir, 'changing.json');
      writeFileSync(path, JSON.stringify({}));
      const verifier = new FileAccreditationVerifier(path);
      await expect(verifier.accreditationsOf('agent-a')).resolves.toEqual([]);
      writeFileSync(path, JSON.stringify({ 'agent-a': ['gdpr'] }));
      await expect(verifier.accreditationsOf('agent-a')).resolves.toEqual(['gdpr']);
    });
  });

  describe('a missing file', () => {
    it('means nobody is accredited', async () => {
      await expect(new FileAccreditationVerifier(join(dir, 'absent.json')).accreditationsOf('agent-a')).resolves.toEqual([]);
    });
  });

  describe('a malformed file', () => {
    it('throws ConfigError naming ACCREDITATION_FILE for invalid JSON', async () => {
      const path = join(dir, 'bad.json');
      writeFileSync(path, '{nope');
      await expect(new FileAccreditationVerifier(path).accreditationsOf('a')).rejects.toThrow(ConfigError);
      await expect(new FileAccreditationVerifier(path).accreditationsOf('a')).rejects.toThrow(/ACCREDITATION_FILE .*bad\.json is not valid JSON/);
    });

    it('throws ConfigError for the wrong shape', async () => {
      const path = join(dir, 'shape.json');
      writeFileSync(path, JSON.stringify({ 'agent-a': 'gdpr' }));
      await expect(new FileAccreditationVerifier(path).accreditationsOf('agent-a')).rejects.toThrow(/must map each identity to an array of labels: agent-a/);
    });
  });
});
