/**
 * The registry's application service: keeps the agent registry of record (DynamoDB) in step with
 * what agents publish (résumé, status, telemetry) and with IoT Core lifecycle events, and hands
 * agents that left to the orchestrator so their steps are re-assigned (ARCHITECTURE §4–5).
 *
 * Accreditations and pools claimed in a résumé are checked against the identity system; unconfirmed
 * claims are kept apart (the planner, matcher and pool claims never trust them) and reported to the agent.
 */
import { z } from 'zod';
import { NotAuthorizedError, PorchlightError, ValidationError, InvalidStateError } from './errors';
import { asPorchlightError, notifyAgent, refuse, topicOfKind } from './inbound';
import type { HandleOutcome, LogFn, LogLevel } from './inbound';
import type { Orchestrator } from './orchestrator';
import { canonicalJson } from './outbox';
import type { AccreditationVerifier, Clock, Publisher, Registry } from './ports';
import type { PresenceMark } from './presence';
import type { InboundMessage } from './rule-event';
import { AgentStatus, Resume, SCHEMA_VERSION, Telemetry, decodePayload } from './schemas';
import type { ParsedTopic } from './topics';

/**
 * The payload of an IoT Core lifecycle event (`$aws/events/presence/{connected|disconnected}/{clientId}`).
 * Other fields AWS sends (sessionIdentifier, principalIdentifier, …) are dropped.
 */
export const PresenceEvent = z.object({
  clientId: z.string().min(1),
  /** Epoch ms. */
  timestamp: z.number().int().nonnegative(),
  /** Grows with each connection of the client id; orders events that arrive out of order. */
  versionNumber: z.number().int().nonnegative().optional(),
  eventType: z.enum(['connected', 'disconnected']),
  /** Disconnected events only, e.g. CLIENT_INITIATED_DISCONNECT, CONNECTION_LOST, DUPLICATE_CLIENTID. */
  disconnectReason: z.string().optional(),
});
export type PresenceEvent = z.infer<typeof PresenceEvent>;

/**
 * IoT Core disconnects the old session when a client connects again with the same client id:
 * the agent is still there, on its new connection, so this disconnect must not mark it offline.
 */
export const SUPERSEDED_SESSION_REASON = 'DUPLICATE_CLIENTID';

/** What the registry service is wired with. */
export interface RegistryServiceDeps {
  registry: Registry;
  verifier: AccreditationVerifier;
  publisher: Publisher;
  clock: Clock;
  /** Re-assigns the live steps of an agent that went offline. */
  orchestrator: Pick<Orchestrator, 'onAgentGone'>;
  log?: LogFn;
}

/** Handles `agents/{id}/resume|status|telemetry` and presence events. */
export class RegistryService {
  private readonly deps: RegistryServiceDeps;

  constructor(deps: RegistryServiceDeps) {
    this.deps = deps;
  }

  /**
   * `agents/{id}/resume` (retained): stores the résumé with its accreditation claims split into
   * verified and unverified; unverified ones are reported on `agents/{id}/errors`. An empty
   * payload means the résumé was cleared: the agent is marked offline and its steps re-assigned.
   */
  async onResume(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'agent-resume');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { agentId } = parsed;
    const spoofed = this.spoofed(msg, agentId);
    if (spoofed) return this.refuse(msg, spoofed, msg.clientId);

    if (msg.payload.byteLength === 0) return this.markOffline(agentId, 'résumé cleared');

    let resume: Resume;
    try {
      resume = decodePayload(Resume, msg.payload, 'résumé');
    } catch (err) {
      return this.refuse(msg, asPorchlightError(err), agentId);
    }
    const held = new Set(await this.deps.verifier.accreditationsOf(agentId));
    const claimed = [...new Set(resume.accredit)];
    const verified = claimed.filter((a) => held.has(a));
    const unverified = claimed.filter((a) => !held.has(a));
    const claimedPools = [...new Set(resume.pools ?? [])];
    const memberOf = new Set(claimedPools.length > 0 ? await this.deps.verifier.poolsOf(agentId) : []);
    const pools = claimedPools.filter((p) => memberOf.has(p));
    const notMember = claimedPools.filter((p) => !memberOf.has(p));

    const existing = await this.deps.registry.get(agentId);
    if (
      existing
      && canonicalJson(existing.resume) === canonicalJson(resume)
      && canonicalJson(existing.verifiedAccredit) === canonicalJson(verified)
      && canonicalJson(existing.unverifiedAccredit) === canonicalJson(unverified)
      && canonicalJson(existing.verifiedPools ?? []) === canonicalJson(pools)
    ) {
      return { status: 'duplicate', detail: `résumé of ${agentId} unchanged` };
    }
    await this.deps.registry.putResume(agentId, resume, { verified, unverified, pools }, this.now());
    this.log('info', 'résumé stored', { agentId, skills: resume.skills, verified, unverified, pools, notMember });
    if (unverified.length > 0) {
      const error = new NotAuthorizedError(
        `accreditation claim(s) ${unverified.join(', ')} of agent ${agentId} are not confirmed by its identity; they are ignored until they are`,
      );
      await notifyAgent(this.deps, agentId, error, { topic: msg.topic });
    }
    if (notMember.length > 0) {
      const error = new NotAuthorizedError(
        `pool(s) ${notMember.join(', ')} listed by agent ${agentId} are not confirmed by its identity; it cannot claim their steps until they are`,
      );
      await notifyAgent(this.deps, agentId, error, { topic: msg.topic });
    }
    const dropped = [
      ...(unverified.length > 0 ? [`unverified accreditations dropped: ${unverified.join(', ')}`] : []),
      ...(notMember.length > 0 ? [`unconfirmed pools dropped: ${notMember.join(', ')}`] : []),
    ];
    return { status: 'accepted', detail: `résumé of ${agentId} stored${dropped.map((d) => `; ${d}`).join('')}` };
  }

  /**
   * `agents/{id}/status` (retained; the will says offline): records the state. Offline re-assigns
   * the agent's live steps; draining only keeps new assignments away (the matcher skips agents
   * that are not online) and lets live steps finish.
   */
  async onStatus(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'agent-status');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { agentId } = parsed;
    const spoofed = this.spoofed(msg, agentId);
    if (spoofed) return this.refuse(msg, spoofed, msg.clientId);
    if (msg.payload.byteLength === 0) return { status: 'ignored', detail: `retained status of ${agentId} cleared` };

    let status: AgentStatus;
    try {
      status = decodePayload(AgentStatus, msg.payload, 'agent status');
    } catch (err) {
      return this.refuse(msg, asPorchlightError(err), agentId);
    }
    const existing = await this.deps.registry.get(agentId);
    // Status and résumé are published together at start-up and may be handled in either order.
    if (!existing) return { status: 'ignored', detail: `agent ${agentId} has no résumé yet; status ${status.state} not recorded` };
    const same = existing.state === status.state && canonicalJson(existing.load) === canonicalJson(status.load);
    if (!same) {
      await this.deps.registry.setStatus(agentId, status, this.now());
      this.log('info', 'agent status recorded', { agentId, state: status.state, reason: status.reason });
    }
    // The agent's own word is a connection event too: a lifecycle disconnect from before it is stale.
    // Only a broker time can be compared with lifecycle timestamps; a message without one (0) says nothing.
    if (msg.receivedAt > 0) {
      const version = existing.presence?.version;
      const mark: PresenceMark = { event: status.state === 'offline' ? 'disconnected' : 'connected', at: msg.receivedAt, ...(version !== undefined ? { version } : {}) };
      await this.deps.registry.recordPresence(agentId, mark, undefined, this.now());
    }
    // Re-run on a repeat too: a first attempt may have stopped between recording and re-assigning; re-assigning is idempotent.
    if (status.state === 'offline') await this.deps.orchestrator.onAgentGone(agentId, status.reason ?? 'agent reported offline');
    return same ? { status: 'duplicate', detail: `agent ${agentId} already ${status.state}` } : { status: 'accepted', detail: `agent ${agentId} is ${status.state}` };
  }

  /** `agents/{id}/telemetry`: measured cost, latency and success rate, used by the matcher. */
  async onTelemetry(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'agent-telemetry');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { agentId } = parsed;
    const spoofed = this.spoofed(msg, agentId);
    if (spoofed) return this.refuse(msg, spoofed, msg.clientId);

    let telemetry: Telemetry;
    try {
      telemetry = decodePayload(Telemetry, msg.payload, 'telemetry');
    } catch (err) {
      return this.refuse(msg, asPorchlightError(err), agentId);
    }
    const existing = await this.deps.registry.get(agentId);
    if (!existing) {
      return this.refuse(msg, new InvalidStateError(`agent ${agentId} has no résumé; publish agents/${agentId}/resume before telemetry`), agentId);
    }
    if (existing.telemetry && canonicalJson(existing.telemetry) === canonicalJson(telemetry)) {
      return { status: 'duplicate', detail: `telemetry of ${agentId} unchanged` };
    }
    await this.deps.registry.recordTelemetry(agentId, telemetry, this.now());
    return { status: 'accepted', detail: `telemetry of ${agentId} recorded (${telemetry.executions} executions)` };
  }

  /**
   * `$aws/events/presence/{connected|disconnected}/{clientId}` (IoT Core only): a disconnect marks
   * a registered agent offline and re-assigns its steps, except when IoT Core closed an old session
   * because the agent connected again; a connect is recorded. Events arrive out of order and
   * twice: one older than the newest recorded connection event (core/presence.ts; by IoT Core's
   * `versionNumber`, then time, including the agent's own status messages) changes nothing, so a
   * stale disconnect never marks an agent that is back offline. Identities that are not
   * registered agents (clients, the orchestrator) are ignored.
   */
  async onPresence(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'presence');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    let event: PresenceEvent;
    try {
      event = decodePayload(PresenceEvent, msg.payload, 'presence event');
    } catch (err) {
      return this.refuse(msg, asPorchlightError(err));
    }
    if (event.clientId !== parsed.clientId || event.eventType !== parsed.event) {
      const error = new ValidationError('invalid-payload', `presence event says ${event.eventType} of ${event.clientId} but was published on ${msg.topic}`);
      return this.refuse(msg, error);
    }
    const agentId = parsed.clientId;
    const existing = await this.deps.registry.get(agentId);
    if (!existing) return { status: 'ignored', detail: `${agentId} is not a registered agent` };
    const mark: PresenceMark = { event: event.eventType, at: event.timestamp, ...(event.versionNumber !== undefined ? { version: event.versionNumber } : {}) };

    if (event.eventType === 'connected') {
      const recorded = await this.deps.registry.recordPresence(agentId, mark, undefined, this.now());
      if (!recorded) return { status: 'ignored', detail: `${agentId} is not a registered agent` };
      if (recorded.order === 'stale') return { status: 'ignored', detail: `stale connect of agent ${agentId}: ${describeMark(mark)} is older than ${describeMark(existing.presence)}` };
      if (recorded.order === 'duplicate') return { status: 'duplicate', detail: `connect of agent ${agentId} already recorded` };
      return { status: 'accepted', detail: `agent ${agentId} connected (${describeMark(mark)})` };
    }
    const reason = event.disconnectReason ?? 'unknown reason';
    if (reason === SUPERSEDED_SESSION_REASON) return { status: 'ignored', detail: `agent ${agentId} reconnected; its old session was closed` };
    const offline: AgentStatus = { v: SCHEMA_VERSION, state: 'offline', reason: `disconnected (${reason})`, at: new Date(event.timestamp).toISOString() };
    const recorded = await this.deps.registry.recordPresence(agentId, mark, offline, this.now());
    if (!recorded) return { status: 'ignored', detail: `agent ${agentId} is not registered` };
    if (recorded.order === 'stale') {
      this.log('info', 'stale disconnect ignored', { agentId, event: mark, newest: recorded.record.presence });
      return { status: 'ignored', detail: `stale disconnect of agent ${agentId}: ${describeMark(mark)} is older than ${describeMark(recorded.record.presence)}` };
    }
    // A duplicate re-runs re-assignment (a first attempt may have stopped half-way), but only while the
    // agent is still offline: one that came back since must keep its new steps.
    if (recorded.record.state === 'offline') await this.deps.orchestrator.onAgentGone(agentId, offline.reason ?? reason);
    if (recorded.order === 'duplicate' || existing.state === 'offline') return { status: 'duplicate', detail: `agent ${agentId} already offline` };
    this.log('info', 'agent marked offline', { agentId, reason: offline.reason });
    return { status: 'accepted', detail: `agent ${agentId} marked offline: ${offline.reason}` };
  }

  // -------------------------------------------------------------------------------------------

  private async markOffline(agentId: string, reason: string): Promise<HandleOutcome> {
    const existing = await this.deps.registry.get(agentId);
    if (!existing) return { status: 'ignored', detail: `agent ${agentId} is not registered` };
    const already = existing.state === 'offline';
    if (!already) {
      const status: AgentStatus = { v: SCHEMA_VERSION, state: 'offline', reason };
      await this.deps.registry.setStatus(agentId, status, this.now());
      this.log('info', 'agent marked offline', { agentId, reason });
    }
    await this.deps.orchestrator.onAgentGone(agentId, reason);
    return already ? { status: 'duplicate', detail: `agent ${agentId} already offline` } : { status: 'accepted', detail: `agent ${agentId} marked offline: ${reason}` };
  }

  private parse<K extends ParsedTopic['kind']>(msg: InboundMessage, kind: K): Extract<ParsedTopic, { kind: K }> | PorchlightError {
    return topicOfKind(msg, kind);
  }

  /** On IoT Core the rule tells who published; an agent may only write its own topics. */
  private spoofed(msg: InboundMessage, agentId: string): NotAuthorizedError | undefined {
    if (msg.clientId === undefined || msg.clientId === agentId) return undefined;
    return new NotAuthorizedError(`${msg.topic} belongs to agent ${agentId} but was published by client ${msg.clientId}`);
  }

  private refuse(msg: InboundMessage, error: PorchlightError, notify?: string): Promise<HandleOutcome> {
    return refuse(this.deps, msg, error, notify);
  }

  private now(): number {
    return this.deps.clock.now();
  }

  private log(level: LogLevel, msg: string, data?: Record<string, unknown>): void {
    this.deps.log?.(level, msg, data);
  }
}

function describeMark(mark: PresenceMark | undefined): string {
  if (mark === undefined) return 'nothing';
  return `${mark.event} at ${new Date(mark.at).toISOString()}${mark.version !== undefined ? ` (connection ${mark.version})` : ''}`;
}
