package eventgen

// model is one kind of aggregate with the events it produces.
type model struct {
	short         string
	pkg           string
	aggregateType string
	created       string
	events        []string
	binary        bool // some of its events carry binary payloads
}

var models = []model{
	{short: "order", pkg: "com.example.shop.order.api", aggregateType: "Order", created: "OrderPlacedEvent",
		events: []string{"OrderLineAddedEvent", "OrderLineRemovedEvent", "OrderConfirmedEvent", "OrderShippedEvent", "OrderCancelledEvent"}},
	{short: "account", pkg: "com.example.bank.account.api", aggregateType: "BankAccount", created: "AccountOpenedEvent",
		events: []string{"MoneyDepositedEvent", "MoneyWithdrawnEvent", "OverdraftLimitChangedEvent", "AccountFrozenEvent"}},
	{short: "customer", pkg: "com.example.crm.customer.api", aggregateType: "com.example.crm.customer.Customer", created: "CustomerRegisteredEvent",
		events: []string{"AddressChangedEvent", "EmailVerifiedEvent", "NameCorrectedEvent"}},
	{short: "shipment", pkg: "com.example.logistics.api", aggregateType: "Shipment", created: "ShipmentCreatedEvent",
		events: []string{"ParcelScannedEvent", "ShipmentDelayedEvent", "ShipmentDeliveredEvent"}},
	{short: "document", pkg: "com.example.docs.api", aggregateType: "Document", created: "DocumentUploadedEvent",
		events: []string{"ThumbnailRenderedEvent", "DocumentSignedEvent", "DocumentArchivedEvent"}, binary: true},
}

// nonDomainEvents are published outside any aggregate (empty aggregate type).
var nonDomainEvents = []string{
	"com.example.notification.EmailSentEvent",
	"com.example.integration.ExchangeRatesUpdatedEvent",
	"com.example.scheduling.DeadlineTriggeredEvent",
	"com.example.audit.UserLoggedInEvent",
}
