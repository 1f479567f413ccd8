import { Aws } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { RULES, ruleSql, type RuleDefinition, type RuleTarget } from '../rules/catalogue';

/** Props of {@link TopicRules}. */
export interface TopicRulesProps {
  /** The function each rule target invokes. */
  readonly targets: Readonly<Record<RuleTarget, lambda.IFunction>>;
  /** Where IoT puts a message whose rule action failed (e.g. the function was throttled). */
  readonly errorQueue: sqs.IQueue;
  /**
   * The rules to create.
   * @default RULES from infra/rules/catalogue.ts
   */
  readonly rules?: readonly RuleDefinition[];
}

/**
 * One IoT topic rule per catalogue entry (SQL 2016-03-23, Lambda action, SQS error action),
 * each allowed to invoke its function through a permission scoped to the rule's ARN.
 */
export class TopicRules extends Construct {
  /** The rules, by catalogue name. */
  public readonly rules: Readonly<Record<string, iot.CfnTopicRule>>;
  /** The role IoT assumes to write failed messages to the error queue. */
  public readonly errorActionRole: iam.Role;

  constructor(scope: Construct, id: string, props: TopicRulesProps) {
    super(scope, id);
    const definitions = props.rules ?? RULES;
    const names = new Set<string>();
    for (const rule of definitions) {
      if (names.has(rule.name)) throw new Error(`${id}: rule name ${rule.name} is used twice`);
      names.add(rule.name);
      if (!props.targets[rule.target]) throw new Error(`${id}: rule ${rule.name} targets "${rule.target}", which has no function`);
    }

    this.errorActionRole = new iam.Role(this, 'ErrorActionRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } } }),
      description: 'Lets IoT rules put messages whose action failed on the rule-error queue',
    });
    props.errorQueue.grantSendMessages(this.errorActionRole);

    const rules: Record<string, iot.CfnTopicRule> = {};
    for (const rule of definitions) {
      const fn = props.targets[rule.target];
      const cfn = new iot.CfnTopicRule(this, rule.name, {
        ruleName: rule.name,
        topicRulePayload: {
          description: rule.description,
          sql: ruleSql(rule),
          awsIotSqlVersion: '2016-03-23',
          ruleDisabled: false,
          actions: [{ lambda: { functionArn: fn.functionArn } }],
          errorAction: { sqs: { queueUrl: props.errorQueue.queueUrl, roleArn: this.errorActionRole.roleArn, useBase64: false } },
        },
      });
      fn.addPermission(`Invoke-${rule.name}`, {
        principal: new iam.ServicePrincipal('iot.amazonaws.com'),
        sourceArn: cfn.attrArn,
        sourceAccount: Aws.ACCOUNT_ID,
      });
      rules[rule.name] = cfn;
    }
    this.rules = rules;
  }
}
