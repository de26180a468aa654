// Baseline (b): the exact SQL the gateway sends for an operation, written as
// a pgbench script from the gateway's own query code, pipelined as the
// gateway pipelines it: both statements, then one Sync (\endpipeline), one
// implicit transaction and one round trip.
import { SET_ROLE_AND_CLAIMS } from '../../src/db/request-transaction.js';
import { taskQueries, type IfMatch } from '../../src/db/task-queries.js';
import { BEGIN_WRITE } from '../../src/db/write-deadline.js';

export type Operation = 'list' | 'get' | 'create' | 'toggle' | 'patch' | 'delete-recreate' | 'mix';

/** pgbench scripts of the fixed reference (a), where one exists. */
export const REFERENCE_SCRIPTS: Partial<Record<Operation, string>> = {
  list: 'reference-list.sql',
  get: 'reference-get.sql',
  create: 'reference-create.sql',
  toggle: 'reference-toggle.sql',
  patch: 'reference-patch.sql',
};

const CLAIMS = `'{"sub":"bench-user-' || :uid || '"}'`;
const TASK_ID = `md5('bench-user-' || :uid || '-' || :n)::uuid`;
const NO_IF_MATCH: IfMatch = null;

/** The gateway's statement for an operation, with pgbench expressions for its parameters. */
function operation(op: Operation): { mode: 'read' | 'write'; text: string; values: string[] } {
  switch (op) {
    case 'list':
      return { mode: 'read', text: taskQueries.list({ status: 'all', sort: 'created' }, []).text, values: [`'{}'::bigint[]`] };
    case 'get':
      return { mode: 'read', text: taskQueries.get('').text, values: [TASK_ID] };
    case 'create':
      return {
        mode: 'write',
        text: taskQueries.create('', null, false).text,
        values: [`'benchmark task'`, 'null::text', 'false'],
      };
    case 'toggle':
      return { mode: 'write', text: taskQueries.toggle('', NO_IF_MATCH).text, values: [TASK_ID, 'null::bigint[]'] };
    case 'patch':
      return {
        mode: 'write',
        text: taskQueries.update('', {}, NO_IF_MATCH).text,
        values: [TASK_ID, `'{"title":"patched title"}'::jsonb`, 'null::bigint[]'],
      };
    default:
      throw new Error(`no gateway SQL replay for ${op}`);
  }
}

function bind(text: string, values: string[]): string {
  // Highest index first, so $1 does not match the start of $10.
  return values.reduceRight((sql, value, i) => sql.replaceAll(`$${i + 1}`, value), text);
}

export function gatewaySqlScript(op: Operation): string {
  const { mode, text, values } = operation(op);
  return [
    `-- generated from src/db/task-queries.ts and src/db/request-transaction.ts for "${op}"`,
    '\\set uid random(1, :users)',
    '\\set n random(1, :tasks)',
    '\\startpipeline',
    `${bind(SET_ROLE_AND_CLAIMS.text, [CLAIMS, `'5000ms'`, `'10000'`, mode === 'read' ? `'on'` : `'off'`, `''`, `''`])};`,
    // A write's deadline, 26 s ahead as with the gateway's defaults (statement timeout + connection budget + 1 s).
    ...(mode === 'write' ? [`${bind(BEGIN_WRITE.text, [`clock_timestamp() + interval '26 seconds'`])};`] : []),
    `${bind(text, values)};`,
    '\\endpipeline',
    '',
  ].join('\n');
}
