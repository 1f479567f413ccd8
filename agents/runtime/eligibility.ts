/**
 * What an agent may see and answer, from its résumé alone: which task topic roots it subscribes
 * to, and whether a request's constraints rule it out before its own `propose()` is asked.
 */
import { DATA_CLASSES, DEFAULT_TASK_ROOT, requiredAccreditations, type SensitiveDataClass } from '../../core/data-classes';
import { filters, topics } from '../../core/topics';
import type { Resume, TaskRequest } from '../../core/schemas';

/**
 * Task topic roots the agent listens on: `tasks` always; a sensitive class's root (e.g.
 * `patient-data` for `phi`) only when the résumé claims that class's accreditation (`gdpr`) and
 * either lists the class in `dataClasses` or lists no data classes at all. The broker's ACL is
 * the real gate: a claimed but unheld accreditation gets a refused SUBACK.
 */
export function taskRootsFor(resume: Pick<Resume, 'accredit' | 'dataClasses'>): string[] {
  const roots = [DEFAULT_TASK_ROOT];
  for (const [cls, def] of Object.entries(DATA_CLASSES) as [SensitiveDataClass, (typeof DATA_CLASSES)[SensitiveDataClass]][]) {
    const accredited = resume.accredit.includes(def.accreditation);
    const handlesClass = resume.dataClasses === undefined || resume.dataClasses.includes(cls);
    if (accredited && handlesClass && !roots.includes(def.root)) roots.push(def.root);
  }
  return roots;
}

/** One subscription the agent makes, and whether the agent can run without it. */
export interface PlannedSubscription {
  readonly filter: string;
  /** Why the agent subscribes (for logs and errors). */
  readonly purpose: 'requests' | 'assignments' | 'pool' | 'errors';
  readonly taskRoot?: string;
  /**
   * False for a sensitive root and for pools: if the broker refuses it the agent still serves
   * `tasks/` and its own assignments (and logs why). True subscriptions failing stop the agent.
   */
  readonly required: boolean;
}

/** Every subscription an agent makes at birth. */
export function subscriptionPlan(agentId: string, resume: Pick<Resume, 'accredit' | 'dataClasses' | 'pools'>): PlannedSubscription[] {
  const plan: PlannedSubscription[] = [];
  for (const taskRoot of taskRootsFor(resume)) {
    const required = taskRoot === DEFAULT_TASK_ROOT;
    plan.push({ filter: filters.requests(taskRoot), purpose: 'requests', taskRoot, required });
    plan.push({ filter: filters.assignmentsFor(agentId, taskRoot), purpose: 'assignments', taskRoot, required });
    // Optional: only the pool's members may read its offers (a pool thing group on AWS, an ACL
    // grant locally); an agent the broker does not count as a member still serves its own assignments.
    for (const pool of resume.pools ?? []) {
      plan.push({ filter: filters.sharedPool(pool, taskRoot), purpose: 'pool', taskRoot, required: false });
    }
  }
  plan.push({ filter: topics.agentErrors(agentId), purpose: 'errors', required: true });
  return plan;
}

/**
 * Why the agent cannot take part in `request` at all (region, accreditation or data class), or
 * undefined when it may bid. Such a request gets an explicit decline, which lets the proposal
 * window close early.
 */
export function ineligibilityReason(resume: Pick<Resume, 'region' | 'accredit' | 'dataClasses'>, request: Pick<TaskRequest, 'constraints'>): string | undefined {
  const c = request.constraints;
  if (c.region !== undefined) {
    const allowed = Array.isArray(c.region) ? c.region : [c.region];
    if (!allowed.includes(resume.region)) return `region ${resume.region} is not among the allowed regions ${allowed.join(', ')}`;
  }
  const needed = new Set([...(c.accredit ?? []), ...requiredAccreditations(c.dataClasses ?? [])]);
  const missing = [...needed].filter((a) => !resume.accredit.includes(a));
  if (missing.length > 0) return `missing accreditation ${missing.join(', ')}`;
  if (resume.dataClasses !== undefined) {
    const unhandled = (c.dataClasses ?? []).filter((d) => !resume.dataClasses?.includes(d));
    if (unhandled.length > 0) return `does not handle data class ${unhandled.join(', ')}`;
  }
  return undefined;
}
