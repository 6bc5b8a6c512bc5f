from tests.builders import post_proposal


def test_it_blocks_a_sound_proposal_while_trading_is_halted(api):
    response = post_proposal(api)
    assert response.status_code == 202
    body = response.json()
    assert body["decision"]["outcome"] == "block"
    failed = [c["rule"] for c in body["decision"]["checks"] if not c["passed"]]
    assert failed == ["trading_enabled"]
