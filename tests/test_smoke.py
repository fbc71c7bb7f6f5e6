def test_health_answers_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_login_reaches_the_organization_home(app, client, auth, ctx):
    from tests.factories import make_org, make_user

    user = make_user("ada@example.com", "Ada")
    make_org(user, slug="ada-club", name="Ada Club")
    response = auth.login("ada@example.com")
    assert response.status_code == 303
    page = client.get("/o/ada-club/").get_data(as_text=True)
    assert "Ada Club" in page
