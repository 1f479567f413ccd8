import { ArnFormat, Aws, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledge, wildcardResourceFinding } from './acknowledge';

/** The log group IoT Core writes its logs to (fixed by the service). */
export const IOT_LOG_GROUP_NAME = 'AWSIotLogsV2';

/** IoT Core log levels. */
export type IotLogLevel = 'ERROR' | 'WARN' | 'INFO' | 'DEBUG';

/** Props of {@link IotLogging}. */
export interface IotLoggingProps {
  /** @default 'ERROR' (rule failures, authorization failures, disconnects with errors) */
  readonly level?: IotLogLevel;
  /** How long the log group keeps IoT Core's logs. */
  readonly retention: logs.RetentionDays;
}

/**
 * IoT Core logging to CloudWatch Logs (`AWS::IoT::Logging`, with the role IoT assumes to write),
 * into the `AWSIotLogsV2` log group, created here so its retention is a setting and not
 * "never expire". The setting is account- and region-wide: one per account and region.
 */
export class IotLogging extends Construct {
  /** The role IoT Core assumes to write its logs. */
  public readonly role: iam.Role;
  /** IoT Core's log group. */
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: IotLoggingProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', { logGroupName: IOT_LOG_GROUP_NAME, retention: props.retention, removalPolicy: RemovalPolicy.RETAIN });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } } }),
      description: 'Lets IoT Core write its logs to the AWSIotLogsV2 log group',
    });
    const stack = Stack.of(this);
    const group = stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: IOT_LOG_GROUP_NAME, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    this.role.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [group, `${group}:log-stream:*`],
    }));
    new iot.CfnLogging(this, 'Logging', { accountId: Aws.ACCOUNT_ID, defaultLogLevel: props.level ?? 'ERROR', roleArn: this.role.roleArn });

    acknowledge(this.role, 'IoT Core names its own log streams inside the AWSIotLogsV2 log group; the grant covers that one group only.',
      wildcardResourceFinding(`arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:${IOT_LOG_GROUP_NAME}:log-stream:*`));
  }
}
