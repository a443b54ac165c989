//! A small stand-in for the provider's service behind the demo Weather API,
//! so `tollgate dev` shows the whole loop: client → agent → upstream.

use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::cli::error::CliError;

fn city(id: &str) -> Option<(&'static str, &'static str, f64, &'static str)> {
    match id {
        "lisbon" => Some(("Lisbon", "PT", 21.5, "Sunny")),
        "oslo" => Some(("Oslo", "NO", 4.0, "Light snow")),
        "nairobi" => Some(("Nairobi", "KE", 24.0, "Partly cloudy")),
        "lima" => Some(("Lima", "PE", 18.5, "Overcast")),
        _ => None,
    }
}

async fn cities() -> HttpResponse {
    let list: Vec<_> = ["lisbon", "oslo", "nairobi", "lima"]
        .iter()
        .filter_map(|id| city(id).map(|(name, country, _, _)| json!({"id": id, "name": name, "country": country})))
        .collect();
    HttpResponse::Ok().json(list)
}

async fn current(path: web::Path<String>) -> HttpResponse {
    match city(&path) {
        Some((_, _, temperature, summary)) => {
            HttpResponse::Ok().json(json!({"temperatureC": temperature, "summary": summary, "windKph": 12}))
        }
        None => HttpResponse::NotFound().json(json!({"error": "unknown_city"})),
    }
}

async fn forecast(path: web::Path<String>) -> HttpResponse {
    match city(&path) {
        Some((_, _, temperature, summary)) => {
            let days: Vec<_> =
                (0..3).map(|d| json!({"temperatureC": temperature + f64::from(d), "summary": summary})).collect();
            HttpResponse::Ok().json(days)
        }
        None => HttpResponse::NotFound().json(json!({"error": "unknown_city"})),
    }
}

async fn alerts(req: HttpRequest) -> HttpResponse {
    let _ = req;
    HttpResponse::Created().json(json!({"subscribed": true}))
}

/// Serves the demo upstream on `listener` in the background.
pub fn spawn(listener: TcpListener) -> Result<(), CliError> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/cities", web::get().to(cities))
            .route("/cities/{id}/current", web::get().to(current))
            .route("/cities/{id}/forecast", web::get().to(forecast))
            .route("/alerts", web::post().to(alerts))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(())
}
