"""Services: verb functions over the models. They flush, never commit."""
