"""Batch scores: the runs of umrisk score-batch (model version, store fingerprint, scoring date, status) and each
member's score, tier, percentile and reasons in a run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('data_sha256', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('not_scorable', sa.JSON(), nullable=False),
    sa.Column('ran_by', sa.String(length=128), nullable=False),
    sa.Column('executor', sa.String(length=128), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('superseded_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['superseded_by'], ['batch_runs.id'],
                            name=op.f('fk_batch_runs_superseded_by_batch_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_runs'))
    )
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.create_index('ix_batch_runs_model_status_as_of', ['model', 'status', 'as_of'], unique=False)

    op.create_table('batch_scores',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.DateTime(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=False),
    sa.Column('percentile', sa.Float(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['batch_runs.id'], name=op.f('fk_batch_scores_run_id_batch_runs')),
    sa.PrimaryKeyConstraint('run_id', 'member_id', name=op.f('pk_batch_scores'))
    )
    with op.batch_alter_table('batch_scores', schema=None) as batch_op:
        batch_op.create_index('ix_batch_scores_model_member', ['model', 'member_id'], unique=False)
        batch_op.create_index('ix_batch_scores_run_probability', ['run_id', 'probability'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_scores_run_probability')
        batch_op.drop_index('ix_batch_scores_model_member')

    op.drop_table('batch_scores')
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_runs_model_status_as_of')

    op.drop_table('batch_runs')
