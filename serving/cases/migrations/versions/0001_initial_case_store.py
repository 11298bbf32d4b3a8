"""The initial case store: cases, their events, notes, determinations, appeals and deadline extensions;
outreach contacts; users.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('member_known', sa.Boolean(), nullable=False),
    sa.Column('service_type', sa.String(length=32), nullable=False),
    sa.Column('codes', sa.JSON(), nullable=False),
    sa.Column('diagnoses', sa.JSON(), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('received_time', sa.DateTime(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('original_deadline', sa.DateTime(), nullable=False),
    sa.Column('requesting_provider', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_reference', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('assignee', sa.String(length=128), nullable=True),
    sa.Column('assigned_at', sa.DateTime(), nullable=True),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('request_id', name=op.f('uq_cases_request_id'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_assignee'), ['assignee'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_status'), ['status'], unique=False)

    op.create_table('outreach_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outreach_contacts'))
    )
    with op.batch_alter_table('outreach_contacts', schema=None) as batch_op:
        batch_op.create_index('ix_outreach_contacts_member_time', ['member_id', 'time'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('appeals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('filed_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('appealed_decision', sa.String(length=32), nullable=False),
    sa.Column('appealed_reviewer', sa.String(length=128), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_appeals_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals'))
    )
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeals_case_id'), ['case_id'], unique=False)

    op.create_table('case_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('token_id', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=32), nullable=True),
    sa.Column('to_status', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_events_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_events_case_id'), ['case_id'], unique=False)

    op.create_table('case_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_notes_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_notes'))
    )
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_notes_case_id'), ['case_id'], unique=False)

    op.create_table('deadline_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('old_deadline', sa.DateTime(), nullable=False),
    sa.Column('new_deadline', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_deadline_extensions_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_extensions'))
    )
    with op.batch_alter_table('deadline_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deadline_extensions_case_id'), ['case_id'], unique=False)

    op.create_table('determinations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('reviewer', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('appeal_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], name=op.f('fk_determinations_appeal_id_appeals')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_determinations_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_determinations'))
    )
    with op.batch_alter_table('determinations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_determinations_case_id'), ['case_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('determinations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_determinations_case_id'))

    op.drop_table('determinations')
    with op.batch_alter_table('deadline_extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deadline_extensions_case_id'))

    op.drop_table('deadline_extensions')
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_notes_case_id'))

    op.drop_table('case_notes')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_events_case_id'))

    op.drop_table('case_events')
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeals_case_id'))

    op.drop_table('appeals')
    op.drop_table('users')
    with op.batch_alter_table('outreach_contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_outreach_contacts_member_time')

    op.drop_table('outreach_contacts')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_status'))
        batch_op.drop_index(batch_op.f('ix_cases_member_id'))
        batch_op.drop_index(batch_op.f('ix_cases_assignee'))

    op.drop_table('cases')
