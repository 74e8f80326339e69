"""The units of FHIR Encounters kept on the real Redis (``vigil:fe:<keyed hash>``, the state's TTL,
restarted by every update and every read):
what the workers' FHIR agent keeps, ``vigil serve``'s POST /fhir reads, and the other way round, so
a result sent apart from its Encounter is placed alike on either intake."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import unique_patient
from vigil.agents.web.kafka_feed import KafkaWardFeed
from vigil.infra.redis import PatientStore, places_key
from vigil.schemas.codecs.fhir_places import Place

pytestmark = pytest.mark.integration

WARD = (Place("MICU", "completed", 1710504000.0, 1710583200.0), Place("4WEST", "active", 1710583500.0, None))


def test_the_workers_store_and_the_web_intake_keep_and_read_the_same_encounters(stack, stack_settings) -> None:
    by_worker, by_web = (unique_patient("enc-worker"), "V1"), (unique_patient("enc-web"), "V1")  # (patient, visit)
    feed = KafkaWardFeed(stack_settings)
    store = PatientStore.connect(stack_settings)

    async def worker_side() -> dict[str, tuple[Place, ...]]:
        await store.save_places({by_worker: WARD})
        ttl = await store.client.ttl(places_key(by_worker))
        assert stack_settings.redis.ttl_s - 60 < ttl <= stack_settings.redis.ttl_s
        # both near the end of their TTL: the Encounters' last updates are a week old
        await store.client.expire(places_key(by_worker), 30)
        await store.client.expire(places_key(by_web), 30)
        kept = await store.load_places([by_worker, by_web, (by_worker[0], "V2"), (unique_patient("never"), "V1")])
        ttls = [await store.client.ttl(places_key(e)) for e in (by_worker, by_web)]
        await store.close()
        # a result that names the Encounter keeps it for another TTL (its stay is not over)
        assert all(stack_settings.redis.ttl_s - 60 < t <= stack_settings.redis.ttl_s for t in ttls), ttls
        return kept

    feed.keep_places({by_web: WARD[1:]})
    kept = asyncio.run(worker_side())
    assert kept == {by_worker: WARD, by_web: WARD[1:]}  # an Encounter never sent, or another's, is not there
    feed._places_redis().expire(places_key(by_web), 30)
    assert feed.kept_places([by_worker, by_web]) == kept
    assert stack_settings.redis.ttl_s - 60 < feed._places_redis().ttl(places_key(by_web))  # the web's read too
    raw = feed._places_redis().get(places_key(by_worker))
    assert b"4WEST" in raw and by_worker[0] not in places_key(by_worker)  # the units kept, the ids hashed
