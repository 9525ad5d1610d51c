"""Supabase storage: PostgREST queries and RPC with the service-role key (TAM_STORE=supabase)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tam.adapters.supabase.client import create_supabase_client, supabase_client
from tam.adapters.supabase.repos import (
    SupabaseCompanyRepo,
    SupabaseContactRepo,
    SupabaseJobRepo,
    SupabaseProjectRepo,
)
from tam.ports.storage import Store

__all__ = [
    "open_store",
    "SupabaseCompanyRepo",
    "SupabaseContactRepo",
    "SupabaseJobRepo",
    "SupabaseProjectRepo",
    "create_supabase_client",
    "supabase_client",
]


@asynccontextmanager
async def open_store(url: str, service_role_key: str) -> AsyncIterator[Store]:
    """The four repositories over one client (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY)."""
    async with supabase_client(url, service_role_key) as client:
        yield Store(
            SupabaseProjectRepo(client),
            SupabaseCompanyRepo(client),
            SupabaseContactRepo(client),
            SupabaseJobRepo(client),
        )
