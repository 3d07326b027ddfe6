from django.db import migrations, models

# The sealer's one-time fill: every column but the chain's four is unchanged, whatever columns the table has (the
# first version listed them, and a column added later would have been open to the sealer's UPDATE).
SEALER_ONLY = """
CREATE OR REPLACE FUNCTION riskops_audit_event_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The sealer: fills the NULL chain columns once and changes nothing else.
    IF OLD.chain_seq IS NULL AND OLD.content_hash IS NULL AND OLD.prev_hash IS NULL AND OLD.chain_hash IS NULL
        AND NEW.chain_seq IS NOT NULL AND NEW.content_hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
        AND NEW.chain_hash IS NOT NULL
        AND (to_jsonb(NEW) - ARRAY['chain_seq', 'content_hash', 'prev_hash', 'chain_hash'])
            = (to_jsonb(OLD) - ARRAY['chain_seq', 'content_hash', 'prev_hash', 'chain_hash'])
    THEN
        RETURN NEW;
    END IF;
    IF riskops_audit_may_maintain(TG_RELID) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Only the maintenance procedure of docs/AUDIT.md lifts this.';
END
$$;
"""

LISTED_COLUMNS = """
CREATE OR REPLACE FUNCTION riskops_audit_event_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.chain_seq IS NULL AND OLD.content_hash IS NULL AND OLD.prev_hash IS NULL AND OLD.chain_hash IS NULL
        AND NEW.chain_seq IS NOT NULL AND NEW.content_hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
        AND NEW.chain_hash IS NOT NULL
        AND (NEW.id, NEW.at, NEW.actor_kind, NEW.actor_user_id, NEW.actor_label, NEW.action, NEW.object_type,
             NEW.object_id, NEW.account_id, NEW.before, NEW.after, NEW.reason)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.at, OLD.actor_kind, OLD.actor_user_id, OLD.actor_label, OLD.action, OLD.object_type,
             OLD.object_id, OLD.account_id, OLD.before, OLD.after, OLD.reason)
    THEN
        RETURN NEW;
    END IF;
    IF riskops_audit_may_maintain(TG_RELID) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Only the maintenance procedure of docs/AUDIT.md lifts this.';
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("riskops", "0010_audit_chain")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="client_address",
            field=models.CharField(blank=True, max_length=45, null=True),
        ),
        migrations.RunSQL(SEALER_ONLY, LISTED_COLUMNS),
    ]
