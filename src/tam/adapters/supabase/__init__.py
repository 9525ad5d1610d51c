"""Supabase storage: PostgREST queries and RPC with the service-role key (TAM_STORE=supabase)."""

from tam.adapters.supabase.client import create_supabase_client, supabase_client
from tam.adapters.supabase.repos import (
    SupabaseCompanyRepo,
    SupabaseContactRepo,
    SupabaseJobRepo,
    SupabaseProjectRepo,
)

__all__ = [
    "SupabaseCompanyRepo",
    "SupabaseContactRepo",
    "SupabaseJobRepo",
    "SupabaseProjectRepo",
    "create_supabase_client",
    "supabase_client",
]
