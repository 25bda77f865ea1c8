"""A strategy written against seed 000's StateManager (almanak), running on tierstate.

The only line changed from the almanak version is the import below; the original was
``from almanak.framework.state import (...)``.
"""

import asyncio
import sys
from decimal import Decimal

from tierstate.compat.almanak import (  # was: from almanak.framework.state import (
    StateConflictError,
    StateData,
    StateManager,
    StateManagerConfig,
    StateNotFoundError,
    SQLiteConfigLight,
    WarmBackendType,
)


async def main(db_path: str) -> None:
    config = StateManagerConfig(
        warm_backend=WarmBackendType.SQLITE,
        sqlite_config=SQLiteConfigLight(db_path=db_path),
    )
    manager = StateManager(config)
    await manager.initialize()
    try:
        state = await manager.load_state("mm-1")
    except StateNotFoundError:
        state = await manager.save_state(
            StateData(deployment_id="mm-1", version=1, state={"ticks": 0, "cash": "1000"})
        )
    for _ in range(20):
        while True:
            state.state["ticks"] += 1
            state.state["cash"] = str(Decimal(state.state["cash"]) - Decimal("0.01"))
            try:
                state = await manager.save_state(state, expected_version=state.version)
                break
            except StateConflictError:
                state = await manager.load_state("mm-1")
    print(f"ticks: {state.state['ticks']}, version: {state.version}, cash: {state.state['cash']}")
    await manager.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "./state.db"))
