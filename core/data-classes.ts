/**
 * Data classes: labels on task data (e.g. `phi`, protected health information) that decide
 * which topic tree a task lives under and which accreditation an agent needs to see it.
 *
 * A task with no sensitive data class lives under `tasks/`. A task carrying `phi` lives under
 * `patient-data/`, a tree the policy model grants only to identities in the `gdpr` group, so an
 * agent without that accreditation never receives the request, its assignments or its outputs:
 * the broker enforces it, not the agent's good manners.
 */

/** The topic tree for tasks without sensitive data. */
export const DEFAULT_TASK_ROOT = 'tasks';

/** One sensitive data class: its topic root and the accreditation (group) that may read it. */
export interface DataClassDefinition {
  /** First topic level of every task carrying this class. */
  readonly root: string;
  /** The accreditation an identity must hold (IoT thing group / ACL group) to read the root. */
  readonly accreditation: string;
  readonly description: string;
}

/** The sensitive data classes Porchlight knows. Classes not listed here are plain labels. */
export const DATA_CLASSES = {
  phi: { root: 'patient-data', accreditation: 'gdpr', description: 'protected health information' },
} as const satisfies Record<string, DataClassDefinition>;

export type SensitiveDataClass = keyof typeof DATA_CLASSES;

/** Every task topic root: `tasks` plus one per sensitive data class. */
export const TASK_ROOTS: readonly string[] = [DEFAULT_TASK_ROOT, ...Object.values(DATA_CLASSES).map((d) => d.root)];

/** True when `name` is a sensitive data class with its own topic tree. */
export function isSensitiveDataClass(name: string): name is SensitiveDataClass {
  return Object.prototype.hasOwnProperty.call(DATA_CLASSES, name);
}

/**
 * The topic root for a task carrying `dataClasses`. Throws when the classes need two different
 * roots, since one task cannot live in two trees.
 */
export function taskRootFor(dataClasses: readonly string[] = []): string {
  const roots = new Set(dataClasses.filter(isSensitiveDataClass).map((c) => DATA_CLASSES[c].root));
  if (roots.size > 1) {
    throw new Error(`data classes ${dataClasses.join(', ')} need different topic roots (${[...roots].join(', ')}); split the task`);
  }
  return roots.values().next().value ?? DEFAULT_TASK_ROOT;
}

/** The accreditations an agent needs to handle data of the given classes. */
export function requiredAccreditations(dataClasses: readonly string[] = []): string[] {
  return [...new Set(dataClasses.filter(isSensitiveDataClass).map((c) => DATA_CLASSES[c].accreditation))];
}
