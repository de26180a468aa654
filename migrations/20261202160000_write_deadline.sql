-- migrate:up

-- A write that reaches the database, or finishes, after the gateway has
-- already answered 503 must not commit: the client was told its outcome is
-- unknown and may retry, and a late "ghost" commit would then apply the
-- write a second time (a toggle flipped twice) or overwrite a later write.
--
-- Every write batch the gateway sends starts with api.begin_write(deadline):
-- the moment, on this server's clock, after which the gateway will have
-- answered. It is checked there, first thing, and again by a deferred
-- constraint trigger that runs inside COMMIT itself — after every statement
-- of the batch, however late the rest of the batch arrived. Either check
-- raises PT503 (PostgREST's custom-status form of 503) and the transaction
-- rolls back. Writes without a deadline (psql, PostgREST) are not affected.

-- Sets the transaction's deadline and refuses a batch that arrives late.
create or replace function api.begin_write(p_deadline timestamptz)
returns void
language plpgsql
volatile
as $$
begin
  perform set_config('task_api.write_deadline', p_deadline::text, true);
  perform api.check_write_deadline();
end
$$;

-- Raises PT503 when the transaction's deadline (if any) has passed. The
-- clock is clock_timestamp(), the time now, not the transaction's start.
create or replace function api.check_write_deadline()
returns void
language plpgsql
volatile
as $$
declare
  deadline text := current_setting('task_api.write_deadline', true);
begin
  if deadline is not null and deadline <> '' and clock_timestamp() > deadline::timestamptz then
    raise exception 'the write arrived or finished after its deadline; nothing was changed'
      using errcode = 'PT503', detail = 'write-deadline-passed';
  end if;
end
$$;

create or replace function api.tasks_check_write_deadline()
returns trigger
language plpgsql
as $$
begin
  perform api.check_write_deadline();
  return null;
end
$$;

-- Deferred to COMMIT, so it is the last thing the transaction does. Every
-- change to a task (create, replace, update, toggle, set, delete, and the
-- create behind an Idempotency-Key) queues one check.
drop trigger if exists tasks_write_deadline on api.tasks;
create constraint trigger tasks_write_deadline
  after insert or update or delete on api.tasks
  deferrable initially deferred
  for each row execute function api.tasks_check_write_deadline();

grant execute on function api.begin_write(timestamptz), api.check_write_deadline() to authenticated;

-- migrate:down

drop trigger if exists tasks_write_deadline on api.tasks;
drop function if exists api.tasks_check_write_deadline();
drop function if exists api.begin_write(timestamptz);
drop function if exists api.check_write_deadline();
