-- The audit's allow-list: everything the gateway's roles may reach, in the
-- shape they may reach it. db/audit.sql loads this file and fails on anything
-- reachable that is not written here (docs/security.md, "The audit").
--
-- One line per entry. A migration that gives the gateway's roles something
-- new (a table, a grant, a function, a role) adds its line here in the same
-- change, and a mutation to tests/support/audit-mutations.ts if it is a new
-- kind of object. Relations are schema.name; functions schema.name(types),
-- the argument types as \df prints them (timestamp with time zone, bigint[],
-- api.tasks), white space ignored. An entry for an object that does not exist
-- allows nothing, and a misspelt one shows up as the object "not on the
-- allow-list". Entries for objects still to come are harmless.

-- Roles the gateway (and PostgREST / Neon's Data API) log in as or switch to.
-- The audit starts from these and follows every membership they hold.
-- (role, may log in)
insert into pg_temp.allowed_role values ('authenticator', true);
insert into pg_temp.allowed_role values ('authenticated', false);
insert into pg_temp.allowed_role values ('anon',          false);
insert into pg_temp.allowed_role values ('anonymous',     false);  -- Neon Data API's role for requests without a token

-- Tables that hold user data: row-level security enabled and forced, and
-- every permissive policy for a gateway role applies only to policy_roles and
-- compares owner_column with (select api.current_user_id()).
-- (table, owner column, roles its permissive policies may apply to)
insert into pg_temp.allowed_table values ('api.tasks',              'user_id', '{authenticated}');
insert into pg_temp.allowed_table values ('api.idempotency_keys',   'user_id', '{authenticated}');
insert into pg_temp.allowed_table values ('api.task_list_versions', 'user_id', '{authenticated}');

-- Privileges of the gateway's roles on relations (tables, views, sequences).
-- (relation, role, privileges, columns or NULL for the whole relation)
insert into pg_temp.allowed_grant values ('api.tasks',              'authenticated', 'SELECT, DELETE', null);
insert into pg_temp.allowed_grant values ('api.tasks',              'authenticated', 'INSERT, UPDATE', 'title, description, completed');
insert into pg_temp.allowed_grant values ('api.idempotency_keys',   'authenticated', 'SELECT, DELETE', null);
insert into pg_temp.allowed_grant values ('api.idempotency_keys',   'authenticated', 'INSERT',         'key, request_hash, response');
insert into pg_temp.allowed_grant values ('api.task_list_versions', 'authenticated', 'SELECT',         null);

-- Policies for roles the gateway cannot reach (the owners of the SECURITY
-- DEFINER functions below); their conditions are reviewed in policies/.
-- (table, policy, role)
insert into pg_temp.allowed_helper_policy values ('api.tasks',              'tasks_probe_existence',                   'task_probe');
insert into pg_temp.allowed_helper_policy values ('api.idempotency_keys',   'idempotency_keys_janitor_select_expired', 'idempotency_janitor');
insert into pg_temp.allowed_helper_policy values ('api.idempotency_keys',   'idempotency_keys_janitor_delete_expired', 'idempotency_janitor');
insert into pg_temp.allowed_helper_policy values ('api.task_list_versions', 'task_list_versions_versioner_select',     'task_list_versioner');
insert into pg_temp.allowed_helper_policy values ('api.task_list_versions', 'task_list_versions_versioner_insert',     'task_list_versioner');
insert into pg_temp.allowed_helper_policy values ('api.task_list_versions', 'task_list_versions_versioner_update',     'task_list_versioner');

-- Functions a gateway role may execute, and whether each is SECURITY DEFINER
-- (which then also needs a pinned search_path ending in pg_temp and an owner
-- that is neither superuser nor BYPASSRLS).
-- (signature, role that may execute it, SECURITY DEFINER)
insert into pg_temp.allowed_function values ('api.current_user_id()',                                 'authenticated', false);
insert into pg_temp.allowed_function values ('api.trim_white_space(text)',                            'authenticated', false);
insert into pg_temp.allowed_function values ('api.task_exists(uuid)',                                 'authenticated', true);
insert into pg_temp.allowed_function values ('api.raise_task_unmatched(uuid, bigint[])',              'authenticated', false);
insert into pg_temp.allowed_function values ('api.get_task(uuid)',                                    'authenticated', false);
insert into pg_temp.allowed_function values ('api.create_task(text, text, boolean)',                  'authenticated', false);
insert into pg_temp.allowed_function values ('api.replace_task(uuid, text, text, boolean, bigint[])', 'authenticated', false);
insert into pg_temp.allowed_function values ('api.update_task(uuid, jsonb, bigint[])',                'authenticated', false);
insert into pg_temp.allowed_function values ('api.toggle_task(uuid, bigint[])',                       'authenticated', false);
insert into pg_temp.allowed_function values ('api.set_task_completed(uuid, boolean, bigint[])',       'authenticated', false);
insert into pg_temp.allowed_function values ('api.delete_task(uuid, bigint[])',                       'authenticated', false);
insert into pg_temp.allowed_function values ('api.purge_expired_idempotency_keys()',                  'authenticated', true);
insert into pg_temp.allowed_function values ('api.max_tasks_per_user()',                              'authenticated', false);
insert into pg_temp.allowed_function values ('api.create_task_idempotent(text, jsonb)',               'authenticated', false);
insert into pg_temp.allowed_function values ('api.task_list_version()',                               'authenticated', false);
insert into pg_temp.allowed_function values ('api.list_tasks_page(text, boolean, integer, timestamp with time zone, uuid, text)', 'authenticated', false);  -- one page of the caller's list, under RLS
insert into pg_temp.allowed_function values ('api.advisory_lock_key(text[])',                         'authenticated', false);
insert into pg_temp.allowed_function values ('api.lock_user_limits()',                                'authenticated', false);
insert into pg_temp.allowed_function values ('api.max_bytes_per_user()',                              'authenticated', false);
insert into pg_temp.allowed_function values ('api.max_idempotency_keys_per_user()',                   'authenticated', false);
insert into pg_temp.allowed_function values ('api.task_bytes(text, text)',                            'authenticated', false);
insert into pg_temp.allowed_function values ('api.idempotency_record_bytes(text, text, jsonb)',       'authenticated', false);
insert into pg_temp.allowed_function values ('api.stored_bytes()',                                    'authenticated', false);
insert into pg_temp.allowed_function values ('api.check_byte_quota(bigint)',                          'authenticated', false);
insert into pg_temp.allowed_function values ('api.begin_write(timestamp with time zone)',             'authenticated', false);
insert into pg_temp.allowed_function values ('api.check_write_deadline()',                            'authenticated', false);
insert into pg_temp.allowed_function values ('public.task_api_schema_versions()',                     'authenticator', true);  -- start-up check: applied migration versions

