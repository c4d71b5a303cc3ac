using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TxLog;
using TxLog.Hosting;
using TxLog.Mvcc;

// The extension lives in the DI namespace so `services.AddTxLog` is found without another using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a TxLog store in a Microsoft.Extensions host.</summary>
public static class TxLogServiceCollectionExtensions
{
    /// <summary>
    /// Adds a TxLog store that opens when the host starts and closes when it stops, and makes
    /// <see cref="LogStore"/> (and <see cref="TransactionEngine"/> when configured) injectable.
    /// The store opens at host start, or when first resolved if that is earlier (hosted services that
    /// take a <see cref="LogStore"/> are built before the host starts them); after the host stops,
    /// resolving it throws <see cref="InvalidOperationException"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets <see cref="TxLogOptions.Directory"/> and the rest of the options.</param>
    /// <returns>The options builder, for further configuration or validation.</returns>
    public static OptionsBuilder<TxLogOptions> AddTxLog(this IServiceCollection services, Action<TxLogOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        OptionsBuilder<TxLogOptions> builder = services.AddOptions<TxLogOptions>()
            .Validate(static o => !string.IsNullOrWhiteSpace(o.Directory), "TxLogOptions.Directory is required.");
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        bool registered = false;
        foreach (ServiceDescriptor descriptor in services)
        {
            registered |= descriptor.ServiceType == typeof(TxLogHostedService);
        }

        if (!registered) // a second AddTxLog only adds configuration
        {
            services.AddSingleton<TxLogHostedService>();
            services.AddSingleton<IHostedService>(static sp => sp.GetRequiredService<TxLogHostedService>());
        }

        services.TryAddSingleton<LogStore>(static sp => sp.GetRequiredService<TxLogHostedService>().Store);
        services.TryAddSingleton<TransactionEngine>(static sp => sp.GetRequiredService<TxLogHostedService>().TransactionEngine);
        return builder;
    }
}
