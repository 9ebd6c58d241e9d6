"""A demo shop backend (uvicorn shop:app) with a catalogue and per-user carts. The front end already
embeds ChatKit and can run a client tool named `get_cart` that returns the browser's cart as
{"items": [{"sku": str, "qty": int}]}. Users are identified by the X-Shop-User header."""

from __future__ import annotations

from fastapi import FastAPI, Header, HTTPException

app = FastAPI(title="Shop")
PRODUCTS = {
    "tea-01": {"name": "Green tea", "price": 4.5, "stock": 12},
    "mug-02": {"name": "Blue mug", "price": 9.0, "stock": 0},
    "pot-03": {"name": "Teapot", "price": 24.0, "stock": 3},
}
ORDERS: dict[str, list[str]] = {}


@app.get("/products")
def products() -> dict[str, dict[str, object]]:
    return PRODUCTS


@app.post("/orders/{sku}")
def order(sku: str, x_shop_user: str = Header()) -> dict[str, object]:
    if sku not in PRODUCTS or PRODUCTS[sku]["stock"] == 0:
        raise HTTPException(409, "not available")
    ORDERS.setdefault(x_shop_user, []).append(sku)
    return {"ordered": sku, "orders": ORDERS[x_shop_user]}
