/**
 * The one DynamoDB table, as data. CDK builds the table from it and the local stack creates the
 * same table in DynamoDB Local from it, so the two can never drift.
 */

/** Attribute names and index names every adapter uses. */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds; DynamoDB deletes the item some time after. */
  ttlAttribute: 'expiresAt',
  /** Per-skill index: partition `SKILL#{skill}`, sort `AGENT#{agentId}`. */
  skillIndex: { name: 'bySkill', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  /** Due-work index for the sweeper: partition a shard label, sort epoch ms when next due. */
  dueIndex: { name: 'byDue', partitionKey: 'dueShard', sortKey: 'dueAt' },
} as const;

/** Key and index attribute types, as DynamoDB's AttributeDefinitions want them. */
export const ATTRIBUTE_TYPES: Readonly<Record<string, 'S' | 'N'>> = {
  [TABLE.partitionKey]: 'S',
  [TABLE.sortKey]: 'S',
  [TABLE.skillIndex.partitionKey]: 'S',
  [TABLE.skillIndex.sortKey]: 'S',
  [TABLE.dueIndex.partitionKey]: 'S',
  [TABLE.dueIndex.sortKey]: 'N',
};
