from django.urls import path

from conversations.billing import views as cost_views

urlpatterns = [
    path("", cost_views.costs_page, name="costs"),
    path("balances/", cost_views.costs_balances, name="costs_balances"),
    path("export.csv", cost_views.costs_csv, name="costs_csv"),
    path("conversation/<int:pk>/", cost_views.conversation_cost, name="cost_conversation"),
    path("sidebar/", cost_views.sidebar_list, name="cost_sidebar"),
    path("price/<int:pk>/", cost_views.set_price, name="cost_set_price"),
]
