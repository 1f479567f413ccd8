import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ATTRIBUTE_TYPES, TABLE } from '../table-definition';

/** Props of {@link PorchlightTable}. */
export interface PorchlightTableProps {
  /**
   * The table's physical name. A fixed name lets the service stack import the table without a
   * CloudFormation export and keeps its IAM grants readable.
   * @default a name CloudFormation generates
   */
  readonly tableName?: string;
  /**
   * What happens to the table when the stack is deleted.
   * @default RemovalPolicy.RETAIN — task history and the registry outlive a stack
   */
  readonly removalPolicy?: RemovalPolicy;
}

function attr(name: string): dynamodb.Attribute {
  const t = ATTRIBUTE_TYPES[name];
  if (!t) throw new Error(`table definition has no attribute type for "${name}"`);
  return { name, type: t === 'N' ? dynamodb.AttributeType.NUMBER : dynamodb.AttributeType.STRING };
}

/**
 * The single DynamoDB table (agents, the per-skill index, tasks, proposals, steps), built from
 * infra/table-definition.ts — the same data the local stack uses for DynamoDB Local.
 * On demand, point-in-time recovery, TTL on `expiresAt`, AWS-owned encryption at rest.
 */
export class PorchlightTable extends Construct {
  /** The table. */
  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: PorchlightTableProps = {}) {
    super(scope, id);
    if (props.tableName !== undefined && !/^[A-Za-z0-9_.-]{3,255}$/.test(props.tableName)) {
      throw new Error(`${id}: tableName "${props.tableName}" must be 3-255 letters, digits, '_', '.' or '-'`);
    }
    this.table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: attr(TABLE.partitionKey),
      sortKey: attr(TABLE.sortKey),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE.ttlAttribute,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    for (const index of [TABLE.skillIndex, TABLE.dueIndex]) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: attr(index.partitionKey),
        sortKey: attr(index.sortKey),
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
  }
}
