from tests.conftest import deliver, make_form, render_token, unique_email


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_submit_and_mail(app, client, smtp_server):
    form_id = make_form(app)
    email = unique_email()
    response = client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "first_name": "Ada",
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert deliver(app) == 1
    [mail] = smtp_server.wait_for(1)
    assert mail["To"] == email
